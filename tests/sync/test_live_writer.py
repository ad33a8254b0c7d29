"""50,000 records copied while the application writes through the JournalingWriter, with two
kills inside watermark windows (in process: a BaseException raised at the crash points, the
copier reopened from the state file; the real-SIGKILL variant is test_sigkill_qdrant.py)."""

from __future__ import annotations

import orjson
import pytest

import vmkit.sync.engine
from vmkit import connect, verify
from vmkit.planning.plan import Plan
from vmkit.state.journal import head, read_row
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import Workload, fill, lost_and_resurrected

N = 50_000


class Kill(BaseException):
    """What a SIGKILL does to the copier, in process: nothing after this point runs."""


def memory_cursor(store: StateStore, mid: str, n: int):
    def copied_upto() -> int:
        row = read_row(store, mid)
        if row is None or row.scan_done:
            return n if row is not None and row.scan_done else -1
        return -1 if row.cursor is None else (orjson.loads(row.cursor)[1] or n)
    return copied_upto


def test_50k_with_live_writer_and_two_kills_in_windows(tmp_path, monkeypatch):
    fill("memory://src", N)
    path = tmp_path / "state.db"
    Sync.create("memory://src", "memory://dst", migration_id="live", state=path, batch_size=1000)
    app_store = StateStore(path)  # the application's own connection to the state file
    writer = JournalingWriter("live", app_store)
    upto = memory_cursor(app_store, "live", N)
    work = Workload(writer.upsert, writer.delete, N, upto, seed=7, rate=120).start()

    hits: dict[str, int] = {}
    killed: list[tuple[str, int, int, bool]] = []  # (point, committed chunks, unapplied events,
    #                                                 first uncommitted row already on the target)

    def crash_hit(name: str) -> None:
        hits[name] = n = hits.get(name, 0) + 1
        if name == "sync_window" and n % 3 == 0:  # updates of rows in the chunk just read
            last = upto()
            for rid in (last + 1, last + 300, last + 999):
                work.update(rid)
        if (name, n) in {("sync_window", 9), ("sync_before_commit", 20)}:
            row = read_row(app_store, "live")
            written = len(connect("memory://dst").fetch([upto() + 1])) == 1
            killed.append((name, row.chunks, head(app_store, "live") - row.applied_seq, written))
            raise Kill(name)

    monkeypatch.setattr(vmkit.sync.engine.crashpoints, "hit", crash_hit)
    while True:
        try:
            Sync.open("live", StateStore(path)).bulk_copy()  # a fresh "process" each time
            break
        except Kill:
            continue
    monkeypatch.undo()

    sync = Sync.open("live", StateStore(path))
    assert [k[0] for k in killed] == ["sync_window", "sync_before_commit"]
    assert killed[0][1] == 8  # killed inside the 9th window: 8 chunks committed, the 9th not
    assert killed[0][2] > 0 and not killed[0][3]  # window events not applied, chunk not written yet
    assert killed[1][3]  # the chunk was on the target, its cursor not committed
    st = sync.status()
    assert st.phase == "catch_up" and st.counters["rows_dropped"] > 0  # watermarks dropped rows
    assert hits["sync_window"] == st.counters["chunks"] + 2  # each killed chunk was read again

    sync.catch_up()
    st = sync.verify()  # the writer is still writing
    assert st.phase == "verified" and st.clean_passes == 2

    while work.ops < 300:  # enough writes for the checks below, however fast the copy was
        work.stop.wait(0.01)
    work.join()  # the freeze point: the application stops writing
    sync.catch_up()
    assert sync.status().lag == 0
    plan = Plan.from_json(sync.store.get("live").plan_json)
    with connect("memory://src") as src, connect("memory://dst") as dst:
        result = verify(src, dst, plan)
    assert result.passed, str(result)
    lost, back = lost_and_resurrected(work.last, "memory://dst")
    assert lost == [] and back == []
    assert min(work.counts.values()) > 0
    print(f"\n{work.ops} application writes in {work.seconds:.1f} s "
          f"({work.ops / work.seconds:.0f}/s: {work.counts}); {sync.status()}")
    writer.close()


@pytest.mark.slow
def test_50k_soak_many_kills(tmp_path, monkeypatch):
    """Ten kills at every kind of point while the application keeps writing."""
    fill("memory://src", N)
    path = tmp_path / "state.db"
    Sync.create("memory://src", "memory://dst", migration_id="soak", state=path, batch_size=500)
    app_store = StateStore(path)
    writer = JournalingWriter("soak", app_store)
    work = Workload(writer.upsert, writer.delete, N, memory_cursor(app_store, "soak", N), seed=3, rate=150).start()
    hits: dict[str, int] = {}

    def crash_hit(name: str) -> None:
        hits[name] = n = hits.get(name, 0) + 1
        if n % 11 == 0 and sum(hits.values()) < 400:
            raise Kill(name)

    monkeypatch.setattr(vmkit.sync.engine.crashpoints, "hit", crash_hit)
    kills = 0
    while True:
        try:
            Sync.open("soak", StateStore(path)).bulk_copy()
            break
        except Kill:
            kills += 1
    monkeypatch.undo()
    sync = Sync.open("soak", StateStore(path))
    sync.catch_up()
    assert sync.verify().phase == "verified"
    work.join()
    sync.catch_up()
    with connect("memory://src") as src, connect("memory://dst") as dst:
        assert verify(src, dst, Plan.from_json(sync.store.get("soak").plan_json)).passed
    assert lost_and_resurrected(work.last, "memory://dst") == ([], [])
    assert kills >= 5
