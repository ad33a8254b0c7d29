"""The journal, the writer before cutover, watermarks, resume, leases and the state machine."""

from __future__ import annotations

import numpy as np
import pytest

import vmkit.sync.engine
from vmkit import Migration, connect, verify
from vmkit.core.errors import IllegalTransition, LeaseHeld, StateError
from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.state.journal import events, head, keys_between, read_row, sync_status
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import fill


def batch(ids, v, dim=8, ns=""):
    return RecordBatch(list(ids), np.full((len(ids), dim), float(v)), [{"v": v} for _ in ids], namespace=ns)


def equal(sync: Sync) -> bool:
    rec = sync.store.get(sync.id)
    with connect(rec.source_uri) as s, connect(rec.target_uri) as t:
        return verify(s, t, Plan.from_json(rec.plan_json)).passed


@pytest.fixture
def sync(tmp_path) -> Sync:
    fill("memory://src", 2000)
    return Sync.create("memory://src", "memory://dst", migration_id="j", state=tmp_path / "s.db", batch_size=250)


def test_writer_writes_the_source_then_journals_each_record(sync):
    w = sync.writer()
    w.upsert(batch([1, "x"], 5, ns="n1"))
    w.delete([2])
    assert connect("memory://src").fetch([1, "x"], "n1").metadata == [{"v": 5}, {"v": 5}]
    rows = sync.store.query("SELECT seq, side, namespace, record_id, id_is_int, op, content_hash FROM sync_journal")
    digests = [d.hex() for _, d in batch_digests(batch([1, "x"], 5, ns="n1"))]
    assert [r[1:] for r in rows] == [("source", "n1", "1", 1, "upsert", digests[0]),
                                     ("source", "n1", "x", 0, "upsert", digests[1]),
                                     ("source", "", "2", 1, "delete", None)]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and head(sync.store, "j") == rows[-1][0]
    assert events(sync.store, "j", "source", 0, 99, 10)[0][1] == ("n1", 1)  # ids keep their kind
    assert keys_between(sync.store, "j", "source", rows[0][0], rows[-1][0]) == {("n1", "x"), ("", 2)}
    st = sync_status(sync.store, "j")
    assert (st.phase, st.head, st.applied_seq, st.lag) == ("pending", rows[-1][0], 0, 3)


def test_not_a_sync(tmp_path):
    fill("memory://src", 10)
    m = Migration.create("memory://src", "memory://dst", migration_id="plain", state=tmp_path / "s.db")
    assert sync_status(m.store, "plain") is None
    with pytest.raises(StateError, match="not a sync"):
        JournalingWriter("plain", m.store)
    m.run()
    with pytest.raises(IllegalTransition):
        Sync.enable(m)


def test_watermark_window_drops_rows_and_applies_their_events(sync, monkeypatch):
    w = sync.writer()

    def in_window(name):  # the application writes rows of the chunk just read, inside its window
        if name == "sync_window" and read_row(sync.store, "j").chunks == 1:
            w.upsert(batch([260, 261], 9))
            w.delete([262])

    monkeypatch.setattr(vmkit.sync.engine.crashpoints, "hit", in_window)
    assert sync.store.get("j").state == "not_started"
    st = sync.bulk_copy(max_chunks=2)
    assert sync.store.get("j").state == "in_progress"
    assert st.counters["rows_dropped"] == 3 and st.counters["chunks"] == 2 and st.lag == 0
    dst = connect("memory://dst")
    assert dst.fetch([260, 261]).metadata == [{"v": 9}, {"v": 9}] and len(dst.fetch([262])) == 0
    sync.bulk_copy()
    assert equal(sync)


def test_resume_from_any_earlier_pair_only_replays(sync):
    w = sync.writer()
    sync.bulk_copy(max_chunks=3)
    w.upsert(batch([1, 600, 5000], 3))
    w.delete([7, 1200])
    sync.bulk_copy(max_chunks=2)
    with sync.store.transaction() as db:  # a lost or rewound checkpoint
        db.execute("UPDATE sync_state SET cursor=NULL, applied_seq=0 WHERE migration_id='j'")
    w.upsert(batch([8], 4))
    sync.bulk_copy()
    assert equal(sync)


def test_one_runner_at_a_time(sync):
    lease = sync.store.acquire_lease("j")
    with pytest.raises(LeaseHeld):
        sync.bulk_copy()
    sync.store.release_lease("j", lease)
    sync.bulk_copy(max_chunks=1)
    row = read_row(sync.store, "j")
    with pytest.raises(LeaseHeld):  # a runner whose lease was taken over cannot commit
        vmkit.state.journal.commit(sync.store, "j", "not-the-lease", chunks=("+", 5))
    assert read_row(sync.store, "j").chunks == row.chunks


def test_change_without_an_event_is_found_and_repaired(sync):
    sync.bulk_copy()
    sync.catch_up()
    assert sync.verify().clean_passes == 2
    src = connect("memory://src")
    src.upsert(batch([10, 9999], 8))  # a writer died between its source write and its journal append
    src.delete([11])
    sync.verify(clean_required=2)
    lp = sync.status().last_pass
    assert sync.status().counters["repaired"] == 3 and lp["clean"]
    assert sync.status().counters["passes"] == 5  # 2, then one repairing pass, then 2 clean again
    assert equal(sync)


def test_a_nan_update_gets_one_dead_letter_row_and_the_good_target_record_stays(sync):
    """README "Zero downtime": a write the plan rejects gets a dead-letter row; the target
    keeps its last good version."""
    w = sync.writer()
    sync.bulk_copy()
    dst = connect("memory://dst")
    good = dst.fetch([3]).metadata
    for _ in range(2):  # the same bad write twice: still one row
        w.upsert(RecordBatch([3], np.full((1, 8), np.nan), [{"v": 1}]))  # the target cannot take NaN
        sync.catch_up()
    assert dst.fetch([3]).metadata == good == [{"v": 0, "i": 3}]
    rows = sync.store.query("SELECT namespace, record_id, id_is_int, field FROM rejections WHERE migration_id='j'")
    assert rows == [("", "3", 1, "vector")]
    st = sync.verify()  # the passes leave it out: nothing repaired, nothing deleted
    assert st.phase == "verified" and st.counters["repaired"] == 0 and dst.fetch([3]).metadata == good
    st = sync.cutover()
    assert sync.store.get("j").verification_detail["rejected"] == 1 and dst.fetch([3]).metadata == good

    w.upsert(batch([3], 7))  # a later good write goes through, and its dead letter is cleared
    assert dst.fetch([3]).metadata == [{"v": 7}]


def test_a_good_write_after_a_rejected_one_clears_its_dead_letter(sync):
    w = sync.writer()
    sync.bulk_copy()
    w.upsert(RecordBatch([4], np.full((1, 8), np.inf), [{"v": 1}]))
    sync.catch_up()
    assert sync.store.rejected_count("j") == 1
    w.upsert(batch([4], 6))
    sync.catch_up()
    assert sync.store.rejected_count("j") == 0 and connect("memory://dst").fetch([4]).metadata == [{"v": 6}]
    assert sync.verify().phase == "verified" and equal(sync)


def test_a_record_the_plan_rejects_in_the_bulk_copy_gets_a_dead_letter_row(sync):
    connect("memory://src").upsert(RecordBatch([600], np.full((1, 8), np.nan), [{"v": 1}]))
    sync.bulk_copy()
    assert sync.store.query("SELECT record_id, field FROM rejections WHERE migration_id='j'") == [("600", "vector")]
    assert len(connect("memory://dst").fetch([600])) == 0 and connect("memory://dst").count() == 1999
    assert sync.verify().counters["repaired"] == 0 and sync.status().phase == "verified"


def test_rolled_back_before_cutover_stops_the_sync(sync):
    sync.bulk_copy()
    Migration.open("j", sync.store).rollback()  # `vmkit migrate rollback`: traffic stays on the source
    for step in (sync.catch_up, sync.verify, sync.cutover):
        with pytest.raises(IllegalTransition, match="rolled back before cutover"):
            step()


def test_plain_runner_refuses_a_sync_migration(sync):
    sync.bulk_copy(max_chunks=1)
    with pytest.raises(StateError):
        Migration.open("j", sync.store).run()
