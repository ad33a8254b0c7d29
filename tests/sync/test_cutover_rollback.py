"""Cutover (alias or recorded), writes after cutover, rollback after cutover, stragglers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vmkit import TargetSpec, connect, verify
from vmkit.connectors.memory import faults_for
from vmkit.core.errors import PlanError, StateError, TerminalError
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.state.journal import read_row
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import Workload, fill, lost_and_resurrected


def verified(path, src="memory://src", dst="memory://dst", n=3000, mid="c", **opts) -> Sync:
    if n:
        fill(src, n)
    sync = Sync.create(src, dst, migration_id=mid, state=path, batch_size=500, **opts)
    sync.bulk_copy()
    sync.catch_up()
    assert sync.verify().phase == "verified"
    return sync


def equal(sync: Sync) -> bool:
    rec = sync.store.get(sync.id)
    with connect(rec.source_uri) as s, connect(rec.target_uri) as t:
        return verify(s, t, Plan.from_json(rec.plan_json)).passed


def test_cutover_1000_target_writes_then_rollback(tmp_path):
    sync = verified(tmp_path / "s.db")
    assert sync.store.get("c").state == "in_progress"
    st = sync.cutover()
    assert st.phase == "cut_over" and st.cutover["how"] == "recorded"
    assert "memory://src" in st.cutover["message"] and "memory://dst" in st.cutover["message"]
    rec = sync.store.get("c")
    assert rec.state == "completed" and rec.verification == "passed"

    writer = JournalingWriter("c", StateStore(tmp_path / "s.db"))
    work = Workload(writer.upsert, writer.delete, 3000, lambda: 3000, seed=5)
    faults_for("src").inject(TerminalError("source down"), times=20, op="upsert")  # mirrors lost
    for _ in range(1000):
        work.step()
    assert writer.mirror_failures == 20 and not equal(sync)  # the source missed writes
    assert lost_and_resurrected(work.last, "memory://dst") == ([], [])  # the target led

    st = sync.rollback()
    assert st.phase == "rolled_back_after_cutover" and st.reverse_lag == 0
    assert equal(sync)
    assert lost_and_resurrected(work.last, "memory://src") == ([], [])
    events = [e for (e,) in sync.store.query("SELECT event FROM events WHERE migration_id='c'")]
    assert sync.store.get("c").state == "rolled_back" or "sync rolled back after cutover" in events
    writer.upsert(RecordBatch([424242], np.ones((1, 8)), [{"v": 1}]))  # the source leads again
    assert len(connect("memory://src").fetch([424242])) == 1 and len(connect("memory://dst").fetch([424242])) == 0


def test_cutover_refused_until_two_clean_passes(tmp_path):
    fill("memory://src", 1000)
    sync = Sync.create("memory://src", "memory://dst", migration_id="c", state=tmp_path / "s.db")
    with pytest.raises(StateError, match="bulk copy"):
        sync.verify()
    sync.bulk_copy()
    with pytest.raises(StateError, match="2 in a row"):
        sync.cutover()
    sync.verify(clean_required=1, max_passes=1)
    with pytest.raises(StateError, match="2 in a row"):
        sync.cutover()
    with pytest.raises(StateError, match="migrate rollback"):
        sync.rollback()
    assert read_row(sync.store, "c").phase == "verified"


def test_alias_cutover_and_rollback_embedded_qdrant(tmp_path):
    pytest.importorskip("qdrant_client")
    base = f"qdrant://{tmp_path}/q"
    src, dst, live = f"{base}?collection=docs_v1", f"{base}?collection=docs_v2", f"{base}?collection=docs"
    fill(src, 600, metric="cosine")  # cosine: unit vectors rounded by Qdrant, compared to 1e-6
    with connect(src) as c:
        c.set_alias("docs")
    sync = verified(tmp_path / "s.db", src, dst, n=0)
    writer = sync.writer()
    st = sync.cutover(alias="docs")
    assert st.cutover["how"] == "alias" and st.cutover["alias_before"] == "docs_v1"
    with connect(live) as reader, connect(dst) as target:
        assert target.get_alias("docs") == "docs_v2"
        writer.upsert(RecordBatch([99_999], np.ones((1, 8)), [{"v": 7}]))
        assert reader.fetch([99_999]).metadata == [{"v": 7}]  # readers of the alias see the target
    writer.delete([3])
    assert sync.rollback().cutover["rollback"].startswith("alias 'docs' points at the source")
    with connect(live) as reader:
        assert reader.fetch([99_999]).metadata == [{"v": 7}] and len(reader.fetch([3])) == 0
        assert connect(src).get_alias("docs") == "docs_v1"
    assert equal(sync)
    writer.close()


def test_alias_requested_but_target_has_none(tmp_path):
    sync = verified(tmp_path / "s.db")
    st = sync.cutover(alias="docs")
    assert st.cutover["how"] == "recorded" and "no aliases" in st.cutover["message"]


def test_writes_wait_during_the_switch_then_go_to_the_target(tmp_path):
    sync = verified(tmp_path / "s.db")
    sync._prepare = None
    with sync.store.transaction() as db:
        db.execute("UPDATE sync_state SET phase='cutting_over' WHERE migration_id='c'")
    writer = JournalingWriter("c", StateStore(tmp_path / "s.db"), pause_timeout_s=0.2)
    with pytest.raises(StateError, match="paused"):
        writer.upsert(RecordBatch([5], np.ones((1, 8)), [{"v": 1}]))
    assert connect("memory://src").fetch([5]).metadata == [{"v": 0, "i": 5}]  # nothing written
    writer.pause_timeout_s = 60
    done = threading.Thread(target=writer.upsert, args=(RecordBatch([5], np.ones((1, 8)), [{"v": 2}]),))
    done.start()
    sync.cutover()  # resumes from cutting_over
    done.join()
    sides = {s for (s,) in sync.store.query("SELECT side FROM sync_journal WHERE record_id='5'")}
    assert sides == {"target"}  # the waiting write went to the target first
    assert connect("memory://dst").fetch([5]).metadata == [{"v": 2}] == connect("memory://src").fetch([5]).metadata


def test_straggler_overtaken_by_cutover_and_by_rollback(tmp_path, monkeypatch):
    sync = verified(tmp_path / "s.db")
    writer = sync.writer()
    real = JournalingWriter._phase
    monkeypatch.setattr(JournalingWriter, "_phase", lambda self: ("verified", real(self)[1]))
    sync.cutover()
    writer.upsert(RecordBatch([7], np.ones((1, 8)), [{"v": 9}]))  # read the phase before the flip
    assert connect("memory://dst").fetch([7]).metadata == [{"v": 9}]  # brought along to the target
    assert sync.status().reverse_head > 0  # and journaled there, for a rollback
    monkeypatch.setattr(JournalingWriter, "_phase", lambda self: ("cut_over", real(self)[1]))
    with sync.store.transaction() as db:  # as if a rollback flipped while the write was in flight
        db.execute("UPDATE sync_state SET phase='rolled_back_after_cutover' WHERE migration_id='c'")
    writer.delete([8])
    assert len(connect("memory://src").fetch([8])) == 0  # the source (leading again) agrees


def test_namespaces_folded_and_string_ids_survive_the_round_trip(tmp_path):
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "dot"))
    rng = np.random.default_rng(0)
    for ns in ("a", "b"):  # equal ids in two namespaces, string and int ids
        ids = [f"doc-{i}" for i in range(300)] + list(range(300))
        src.upsert(RecordBatch(ids, rng.standard_normal((600, 8)), [{"n": ns} for _ in ids], namespace=ns))
    sync = verified(tmp_path / "s.db", "memory://src", "memory://dst?ids=uuid,uint", n=0, namespace_policy="field")
    writer = sync.writer()
    writer.delete(["doc-1"], "a")
    sync.catch_up()
    dst = connect("memory://dst?ids=uuid,uint")
    assert dst.count() == 1199 and equal(sync)
    sync.verify()
    sync.cutover()
    writer.upsert(RecordBatch(["doc-1", 5], np.ones((2, 8)), [{"n": "new"}, {"n": "new"}], namespace="b"))
    writer.delete(["doc-2"], "b")
    writer.delete([7], "a")
    sync.rollback()
    assert equal(sync)
    got = src.fetch(["doc-1", 5, "doc-2"], "b")
    assert got.ids == ["doc-1", 5] and got.metadata == [{"n": "new"}, {"n": "new"}]  # original ids, namespace
    assert len(src.fetch([7], "a")) == 0 and len(src.fetch([7], "b")) == 1


def test_no_way_back_refuses_cutover(tmp_path, monkeypatch):
    sync = verified(tmp_path / "s.db")
    import vmkit.sync.cutover as mod

    def broken(source, target, forward):
        p = Plan.from_json(forward.to_json())
        from vmkit.planning.plan import PlanWarning

        p.warnings.append(PlanWarning("metric", "no way", severity="error"))
        return p

    monkeypatch.setattr(mod, "reverse_plan", broken)
    with pytest.raises(PlanError, match="no way back"):
        sync.cutover()
    assert read_row(sync.store, "c").phase == "verified"  # writers never paused


def test_cutover_and_rollback_while_the_application_writes(tmp_path):
    sync = verified(tmp_path / "s.db", n=5000)
    writer = JournalingWriter("c", StateStore(tmp_path / "s.db"))
    work = Workload(writer.upsert, writer.delete, 5000, lambda: 5000, seed=9, rate=150).start()
    while work.ops < 100:  # writes in flight before, during and after the switch
        work.stop.wait(0.01)
    st = Sync.open("c", StateStore(tmp_path / "s.db")).cutover()
    at_cutover = work.ops
    while work.ops < at_cutover + 150:
        work.stop.wait(0.01)
    assert st.phase == "cut_over" and lost_and_resurrected(work.last, "memory://dst") == ([], [])
    st = Sync.open("c", StateStore(tmp_path / "s.db")).rollback()
    at_rollback = work.ops
    while work.ops < at_rollback + 50:
        work.stop.wait(0.01)
    work.join()
    assert st.phase == "rolled_back_after_cutover"
    assert lost_and_resurrected(work.last, "memory://src") == ([], [])  # the source leads again
    both = sync.status()  # both sides journaled (the rows applied and verified are pruned)
    assert both.counters["events_applied"] > 100 and both.reverse_head > both.head > 100
    print(f"\ncutover paused writes {st.cutover['pause_s']:.3f} s, rollback {st.cutover['rollback_pause_s']:.3f} s")


def test_a_kill_inside_the_switch_leaves_writes_paused_until_cutover_runs_again(tmp_path, monkeypatch):
    import vmkit.sync.engine as mod

    class Kill(BaseException):
        pass

    sync = verified(tmp_path / "s.db")
    writer = sync.writer()
    writer.upsert(RecordBatch([1], np.ones((1, 8)), [{"v": 5}]))  # drained by the switch

    def hit(name):
        if name == "sync_switch":
            raise Kill()

    monkeypatch.setattr(mod.crashpoints, "hit", hit)
    with pytest.raises(Kill):
        sync.cutover()
    monkeypatch.undo()
    assert read_row(sync.store, "c").phase == "cutting_over"  # the flip was rolled back with its transaction
    writer.pause_timeout_s = 0.1
    with pytest.raises(StateError, match="paused"):
        writer.upsert(RecordBatch([2], np.ones((1, 8)), [{"v": 5}]))
    assert Sync.open("c", StateStore(tmp_path / "s.db")).cutover().phase == "cut_over"
    writer.pause_timeout_s = 60
    writer.upsert(RecordBatch([2], np.ones((1, 8)), [{"v": 6}]))
    assert connect("memory://dst").fetch([1, 2]).metadata == [{"v": 5}, {"v": 6}]
    assert equal(sync)
