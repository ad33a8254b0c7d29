"""A cutover killed inside its switch (a real SIGKILL of `vmkit sync cutover`), then finished
with `vmkit sync cutover --id` or undone with `vmkit sync abort --id`; `vmkit migrate rollback`
refuses it and names the command; Ctrl-C inside the switch undoes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vmkit
import vmkit.state.journal
import vmkit.sync.cutover
from vmkit import connect
from vmkit.core.errors import StateError
from vmkit.core.records import RecordBatch
from vmkit.state.journal import read_row
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import fill


def vmkit_cli(state: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VMKIT_CRASH_AT"}
    root = str(Path(vmkit.__file__).resolve().parents[1])  # this checkout's vmkit, in the child too
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    if crash:
        env["VMKIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "vmkit", *args, "--state", str(state)],
                          capture_output=True, text=True, env=env, timeout=120)


def verified_qdrant(tmp_path: Path) -> tuple[Path, str, str]:
    pytest.importorskip("qdrant_client")
    base = f"qdrant://{tmp_path}/q"
    src, dst = f"{base}?collection=docs_v1", f"{base}?collection=docs_v2"
    fill(src, 300, metric="dot")
    with connect(src) as c:
        c.set_alias("docs")
    state = tmp_path / "s.db"
    sync = Sync.create(src, dst, migration_id="k", state=state, batch_size=100)
    sync.bulk_copy()
    sync.catch_up()
    assert sync.verify().phase == "verified"
    with JournalingWriter("k", StateStore(state)) as w:  # drained by the switch
        w.upsert(RecordBatch([1], np.ones((1, 8)), [{"v": 5}]))
    return state, src, dst


def one(uri: str, rid: int) -> list[dict]:
    with connect(uri) as c:
        return c.fetch([rid]).metadata


def test_sigkill_inside_the_switch_then_cutover_finishes_it(tmp_path):
    state, src, dst = verified_qdrant(tmp_path)
    p = vmkit_cli(state, "sync", "cutover", "--id", "k", crash="sync_switch")
    assert p.returncode == -9, p.stderr[-2000:]
    store = StateStore(state)
    assert read_row(store, "k").phase == "cutting_over"
    with JournalingWriter("k", store, pause_timeout_s=0.2) as w, pytest.raises(StateError, match="paused"):
        w.upsert(RecordBatch([2], np.ones((1, 8)), [{"v": 6}]))  # application writes wait

    p = vmkit_cli(state, "migrate", "rollback", "--id", "k")  # refused: it would block writes for good
    assert p.returncode == 2 and "vmkit sync cutover --id k" in p.stderr and "vmkit sync abort --id k" in p.stderr
    assert read_row(store, "k").phase == "cutting_over" and store.get("k").state == "in_progress"

    p = vmkit_cli(state, "sync", "cutover", "--id", "k")  # finishes the switch
    assert p.returncode == 0, p.stderr[-2000:]
    assert read_row(store, "k").phase == "cut_over"
    rec = store.get("k")
    assert rec.state == "completed" and rec.verification == "passed"
    assert vmkit_cli(state, "sync", "cutover", "--id", "k").returncode == 0  # idempotent
    with JournalingWriter("k", store) as w:  # writes flow again, to the target first
        w.upsert(RecordBatch([2], np.ones((1, 8)), [{"v": 7}]))
    assert one(dst, 1) == [{"v": 5}] and one(dst, 2) == [{"v": 7}] == one(src, 2)


def test_sigkill_after_the_alias_moved_then_abort_returns_writes_to_the_source(tmp_path):
    state, src, dst = verified_qdrant(tmp_path)
    p = vmkit_cli(state, "sync", "cutover", "--id", "k", "--alias", "docs", crash="sync_repointed")
    assert p.returncode == -9, p.stderr[-2000:]
    store = StateStore(state)
    assert read_row(store, "k").phase == "cutting_over"
    with connect(src) as c:
        assert c.get_alias("docs") == "docs_v2"  # moved, phase not flipped

    p = vmkit_cli(state, "sync", "abort", "--id", "k")
    assert p.returncode == 0, p.stderr[-2000:]
    assert read_row(store, "k").phase == "verified" and store.get("k").state == "in_progress"
    with connect(src) as c:
        assert c.get_alias("docs") == "docs_v1"  # back on the source
    with JournalingWriter("k", store) as w:  # writes go to the source again
        w.upsert(RecordBatch([3], np.ones((1, 8)), [{"v": 8}]))
    assert one(src, 3) == [{"v": 8}]
    assert vmkit_cli(state, "sync", "abort", "--id", "k").returncode == 2  # nothing left to abort
    p = vmkit_cli(state, "sync", "cutover", "--id", "k", "--alias", "docs")  # and a new cutover works
    assert p.returncode == 0, p.stderr[-2000:]
    assert one(dst, 3) == [{"v": 8}]


def test_sigkill_after_the_alias_moved_then_cutover_finishes_and_remembers_where_it_pointed(tmp_path):
    state, src, dst = verified_qdrant(tmp_path)
    p = vmkit_cli(state, "sync", "cutover", "--id", "k", "--alias", "docs", crash="sync_repointed")
    assert p.returncode == -9, p.stderr[-2000:]
    p = vmkit_cli(state, "sync", "cutover", "--id", "k", "--alias", "docs")
    assert p.returncode == 0, p.stderr[-2000:]
    cut = read_row(StateStore(state), "k").cutover
    assert cut["how"] == "alias" and cut["alias_before"] == "docs_v1" and "switching" not in cut
    with connect(dst) as c:
        assert c.get_alias("docs") == "docs_v2"


@pytest.mark.parametrize("point", ["sync_switch", "sync_repointed"])
def test_ctrl_c_inside_the_switch_undoes_it(tmp_path, monkeypatch, point):
    fill("memory://src", 600)
    sync = Sync.create("memory://src", "memory://dst", migration_id="c", state=tmp_path / "s.db", batch_size=300)
    sync.bulk_copy()
    sync.catch_up()
    sync.verify()

    def hit(name: str) -> None:
        if name == point:
            raise KeyboardInterrupt

    monkeypatch.setattr(vmkit.sync.cutover.crashpoints, "hit", hit)
    with pytest.raises(KeyboardInterrupt):
        sync.cutover()
    monkeypatch.undo()
    assert read_row(sync.store, "c").phase == "verified"  # undone: writes flow to the source
    w = sync.writer(pause_timeout_s=0.5)
    w.upsert(RecordBatch([4], np.ones((1, 8)), [{"v": 9}]))
    assert connect("memory://src").fetch([4]).metadata == [{"v": 9}]
    assert sync.cutover().phase == "cut_over" and connect("memory://dst").fetch([4]).metadata == [{"v": 9}]


def test_a_rollback_killed_inside_its_switch_is_aborted_or_finished(tmp_path, monkeypatch):
    class Kill(BaseException):
        pass

    fill("memory://src", 600)
    sync = Sync.create("memory://src", "memory://dst", migration_id="r", state=tmp_path / "s.db", batch_size=300)
    sync.bulk_copy()
    sync.catch_up()
    sync.verify()
    sync.cutover()
    w = sync.writer()
    w.upsert(RecordBatch([4], np.ones((1, 8)), [{"v": 1}]))

    def hit(name: str) -> None:
        if name == "sync_switch":
            raise Kill

    monkeypatch.setattr(vmkit.sync.cutover.crashpoints, "hit", hit)
    with pytest.raises(Kill):
        sync.rollback()
    monkeypatch.undo()
    assert read_row(sync.store, "r").phase == "rolling_back"
    assert sync.abort().phase == "cut_over"  # writes go to the target again
    w.upsert(RecordBatch([4], np.ones((1, 8)), [{"v": 2}]))
    assert connect("memory://dst").fetch([4]).metadata == [{"v": 2}]
    with pytest.raises(StateError, match="sync rollback"):
        sync.abort()
    assert sync.rollback().phase == "rolled_back_after_cutover"
    assert connect("memory://src").fetch([4]).metadata == [{"v": 2}]


@pytest.mark.parametrize("point", ["sync_switch", "sync_repointed", "after the flip", "inside the pause"])
def test_a_kill_at_any_point_of_the_cutover_then_cutover_completes_it(tmp_path, monkeypatch, point):
    class Kill(BaseException):
        pass

    fill("memory://src", 600)
    path = tmp_path / "s.db"
    sync = Sync.create("memory://src", "memory://dst", migration_id="k", state=path, batch_size=300)
    sync.bulk_copy()
    sync.catch_up()
    sync.verify()
    w = sync.writer()
    w.upsert(RecordBatch([5, 9000], np.ones((2, 8)), [{"v": 3}, {"v": 3}]))  # applied inside the cutover

    def hit(name: str) -> None:
        if name == point:
            raise Kill

    real_event, real_commit = sync.store.event, vmkit.state.journal.commit

    def event(mid, what, detail=""):
        real_event(mid, what, detail)
        if point == "after the flip" and what == "sync cut over":
            raise Kill

    def commit(store, mid, lease, **changes):
        real_commit(store, mid, lease, **changes)
        if point == "inside the pause" and changes.get("phase") == "cutting_over":
            raise Kill

    monkeypatch.setattr(vmkit.sync.cutover.crashpoints, "hit", hit)
    monkeypatch.setattr(sync.store, "event", event)
    monkeypatch.setattr(vmkit.state.journal, "commit", commit)
    with pytest.raises(Kill):
        sync.cutover()
    monkeypatch.undo()
    assert sync.store.get("k").state == "in_progress"
    st = Sync.open("k", StateStore(path)).cutover()
    rec = sync.store.get("k")
    assert st.phase == "cut_over" and rec.state == "completed" and rec.verification == "passed"
    assert connect("memory://dst").fetch([5, 9000]).metadata == [{"v": 3}, {"v": 3}]
    w.upsert(RecordBatch([6], np.ones((1, 8)), [{"v": 4}]))  # writes flow, to the target first
    assert connect("memory://dst").fetch([6]).metadata == [{"v": 4}]
