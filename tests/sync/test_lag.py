"""A source that shows writes late (read-after-write lag, as Pinecone's): sync converges and cuts
over while the application writes, and an event is applied only once the source shows it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vmkit import connect
from vmkit.connectors.memory import faults_for
from vmkit.core.records import RecordBatch
from vmkit.state.journal import read_row
from vmkit.state.store import StateStore
from vmkit.sync.apply import NotVisible
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import Workload, fill, lost_and_resurrected

N = 1000


def test_cutover_under_a_2s_lag_while_the_application_writes(tmp_path):
    """README "Zero downtime": an event is applied once the source shows its journaled content;
    cutover is reached within a bounded number of rounds on an eventually consistent source."""
    fill("memory://src", N)
    path = tmp_path / "s.db"
    sync = Sync.create("memory://src", "memory://dst", migration_id="lag", state=path, batch_size=500)
    faults_for("src").lag_s = 2.0  # from now on every write shows 2 s late
    writer = JournalingWriter("lag", StateStore(path))
    work = Workload(writer.upsert, writer.delete, N, lambda: N - 1, seed=4, rate=30).start()
    work.stop.wait(0.5)  # writes before the bulk copy
    st = sync.run(max_rounds=6)  # bulk copy, rounds of catch-up + verify, cutover; writes flow
    assert st.phase == "cut_over" and sync.store.get("lag").state == "completed"
    at_cutover = work.ops
    while work.ops < at_cutover + 30:  # and after cutover (the target leads)
        work.stop.wait(0.05)
    work.join()
    lost, back = lost_and_resurrected(work.last, "memory://dst")
    assert lost == [] and back == []  # the last write of every id, no resurrected delete
    assert work.counts["delete"] > 0 and work.counts["update"] > 0 and at_cutover > 100
    assert sync.status().counters["repaired"] == 0  # nothing was left for the passes to repair
    writer.close()


@pytest.fixture
def lagging(tmp_path):
    fill("memory://src", 600)
    sync = Sync.create("memory://src", "memory://dst", migration_id="v", state=tmp_path / "s.db", batch_size=300)
    sync.bulk_copy()
    faults_for("src").lag_s = 2.0
    return sync


def test_an_unseen_update_fails_loudly_and_changes_nothing(lagging):
    """The source keeps showing the old record past the visibility bound: the apply fails, names
    the id, and leaves the target as it was; once the source shows it, the same call applies it."""
    w = lagging.writer()
    w.upsert(RecordBatch([5], np.ones((1, 8)), [{"v": 1}]))
    sync = Sync.open("v", lagging.store, visibility_s=0.3)
    with pytest.raises(NotVisible, match=r"does not show the journaled content of 1 ids \(5\)"):
        sync.catch_up()
    assert connect("memory://dst").fetch([5]).metadata == [{"v": 0, "i": 5}]
    assert read_row(sync.store, "v").applied_seq == 0
    assert Sync.open("v", lagging.store, visibility_s=5).catch_up().lag == 0  # waits until it shows
    assert connect("memory://dst").fetch([5]).metadata == [{"v": 1}]


def test_not_found_for_an_upsert_event_is_never_taken_as_a_delete(lagging):
    w = lagging.writer()
    w.delete([7])
    faults_for("src").lag_s = 0.0
    lagging.catch_up()  # the delete is visible: applied
    faults_for("src").lag_s = 2.0
    w.upsert(RecordBatch([7], np.ones((1, 8)), [{"v": 2}]))  # back, but not visible yet
    w.upsert(RecordBatch([8], np.ones((1, 8)), [{"v": 2}]))
    connect("memory://dst").upsert(RecordBatch([7], np.ones((1, 8)), [{"v": 2}]))  # (as a redo would)
    sync = Sync.open("v", lagging.store, visibility_s=0.2)
    with pytest.raises(NotVisible):
        sync.catch_up()
    assert connect("memory://dst").fetch([7]).metadata == [{"v": 2}]  # "not found" deleted nothing
    assert Sync.open("v", lagging.store).catch_up().lag == 0
    assert connect("memory://dst").fetch([7, 8]).metadata == [{"v": 2}, {"v": 2}]


def test_writes_to_a_cosine_normalizing_source_are_recognised(tmp_path):
    """Embedded Qdrant stores unit vectors under cosine: what it hands back still matches the
    hash journaled for what the application wrote."""
    pytest.importorskip("qdrant_client")
    src, dst = f"qdrant://{tmp_path}/q?collection=a", f"qdrant://{tmp_path}/q?collection=b"
    fill(src, 300, metric="cosine")
    sync = Sync.create(src, dst, migration_id="q", state=tmp_path / "s.db", batch_size=100)
    sync.bulk_copy()
    with sync.writer() as w:
        w.upsert(RecordBatch(list(range(5, 55)), np.random.default_rng(3).standard_normal((50, 8)) * 3.7,
                             [{"v": 1}] * 50))
    assert Sync.open("q", sync.store, visibility_s=2).catch_up().lag == 0
    assert sync.verify().clean_passes == 2


def test_rollback_after_cutover_converges_on_a_source_that_shows_writes_late(tmp_path):
    """The passes of a rollback compare a lagging source that the mirror writes just reached:
    ids this sync wrote are re-checked until the source shows them, not repaired as dirty."""
    fill("memory://src", N)
    path = tmp_path / "s.db"
    sync = Sync.create("memory://src", "memory://dst", migration_id="rb", state=path, batch_size=500)
    faults_for("src").lag_s = 0.5
    writer = JournalingWriter("rb", StateStore(path))
    work = Workload(writer.upsert, writer.delete, N, lambda: N - 1, seed=6, rate=60).start()
    assert sync.run().phase == "cut_over"
    at = work.ops
    while work.ops < at + 60:  # target-first writes, mirrored to the lagging source
        work.stop.wait(0.05)
    st = Sync.open("rb", StateStore(path)).rollback()
    assert st.phase == "rolled_back_after_cutover" and st.counters["repaired"] == 0
    at = work.ops
    while work.ops < at + 30:  # the source leads again
        work.stop.wait(0.05)
    work.join()
    time.sleep(0.7)  # the source shows the last writes
    assert lost_and_resurrected(work.last, "memory://src") == ([], [])
    writer.close()


def test_the_bulk_copy_leaves_writes_the_source_does_not_show_yet_to_the_catch_up(tmp_path):
    """The bulk copy never waits for a lagging source: rows with unapplied events are dropped
    and their events left to the catch-up (a chunk does not cost the source's lag)."""
    fill("memory://src", 2000)
    sync = Sync.create("memory://src", "memory://dst", migration_id="b", state=tmp_path / "s.db", batch_size=500)
    faults_for("src").lag_s = 2.0
    w = sync.writer()
    w.upsert(RecordBatch([10, 700, 1500], np.ones((3, 8)), [{"v": 1}] * 3))
    w.delete([1200])
    st = sync.bulk_copy()
    assert st.phase == "catch_up" and st.lag == 4 and st.counters["rows_dropped"] == 4
    dst = connect("memory://dst")
    assert len(dst.fetch([10, 700, 1200, 1500])) == 0 and dst.count() == 1996  # no stale row written
    assert sync.catch_up().lag == 0  # waits until the source shows them
    assert dst.fetch([10, 700, 1200, 1500]).metadata == [{"v": 1}] * 3 and dst.count() == 1999
    assert sync.verify().phase == "verified"
