"""The journal pruned of events applied and verified; the lease renewed during long sync work; a
runner whose lease was taken over changes nothing; the writes applied during the cutover proved."""

from __future__ import annotations

import numpy as np
import pytest

from vmkit import connect, verify
from vmkit.connectors.memory import faults_for
from vmkit.core.errors import LeaseHeld, StateError
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.state.journal import head, read_row
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync

from .helpers import fill


def batch(ids, v):
    return RecordBatch(list(ids), np.full((len(ids), 8), float(v)), [{"v": v} for _ in ids])


def equal(sync: Sync) -> bool:
    rec = sync.store.get(sync.id)
    with connect(rec.source_uri) as s, connect(rec.target_uri) as t:
        return verify(s, t, Plan.from_json(rec.plan_json)).passed


def rows(sync: Sync) -> int:
    return int(sync.store.query("SELECT count(*) FROM sync_journal WHERE migration_id=?", sync.id)[0][0])


@pytest.fixture
def sync(tmp_path) -> Sync:
    fill("memory://src", 2000)
    s = Sync.create("memory://src", "memory://dst", migration_id="p", state=tmp_path / "s.db", batch_size=500)
    s.bulk_copy()
    return s


def test_journal_pruned_after_apply_and_verify(sync):
    """README "Zero downtime": the journal is pruned of events applied and verified."""
    w = sync.writer()
    for i in range(60):
        w.upsert(batch([i, 5000 + i], i))
    w.delete([100, 101])
    assert rows(sync) == 122
    sync.catch_up()
    assert rows(sync) == 122  # applied, not yet verified: kept
    h = head(sync.store, "p")
    st = sync.verify()
    assert st.phase == "verified" and rows(sync) == 1 and st.head == h and st.lag == 0  # the head row stays
    w.upsert(batch([7], 99))  # behaviour unchanged: new events after the pruned ones
    w.delete([5001])
    assert sync.status().lag == 2
    sync.catch_up()
    assert sync.status().lag == 0 and connect("memory://dst").fetch([7, 5001]).metadata == [{"v": 99}]
    assert sync.verify().phase == "verified"
    st = sync.cutover()
    assert st.phase == "cut_over" and rows(sync) == 1 and equal(sync)


def test_lease_renewed_while_waiting_for_a_lagging_source_and_during_passes(sync, monkeypatch):
    renewals = []
    real = StateStore.renew_lease
    monkeypatch.setattr(StateStore, "renew_lease", lambda self, mid, token: (renewals.append(mid), real(self, mid, token)))
    sync.renew_every_s = 0.1
    faults_for("src").lag_s = 2.0
    sync.writer().upsert(batch([3], 1))
    sync.catch_up()  # about 2 s of waiting without a commit
    assert len(renewals) >= 3
    faults_for("src").lag_s = 0.0
    sync.renew_every_s = 0.0
    before = len(renewals)
    sync.verify()  # scans of 2000 records each side per pass, no commits in between
    assert len(renewals) - before >= 4


def test_a_runner_whose_lease_was_taken_over_changes_nothing(sync, monkeypatch):
    sync.catch_up()
    sync.verify()
    real_event = sync.store.event

    def taken_over_after_the_flip(mid, event, detail=""):
        real_event(mid, event, detail)
        if event == "sync cut over":  # another runner took the lease (this one looked dead)
            with sync.store.transaction() as db:
                db.execute("UPDATE migrations SET lease_owner='other' WHERE id=?", (mid,))

    monkeypatch.setattr(sync.store, "event", taken_over_after_the_flip)
    with pytest.raises(LeaseHeld):
        sync.cutover()
    rec = sync.store.get("p")
    assert rec.state == "in_progress" and rec.verification != "passed"  # not completed by this runner
    monkeypatch.undo()
    with sync.store.transaction() as db:  # the other runner is gone
        db.execute("UPDATE migrations SET lease_owner=NULL WHERE id='p'")
    assert sync.cutover().phase == "cut_over"  # a cutover run again completes it
    assert sync.store.get("p").state == "completed"


def test_writes_applied_during_pause_and_switch_are_proved_before_passed(sync):
    sync.catch_up()
    sync.verify()
    sync.writer().upsert(batch([5, 6], 3))  # applied during the pause
    faults_for("dst").corrupt_rate = 1.0  # the target now stores noise
    with pytest.raises(StateError, match="2 ids written during the cutover differ"):
        Sync.open("p", sync.store, visibility_s=0.3).cutover()
    assert read_row(sync.store, "p").phase == "verified"  # undone: writes go to the source
    rec = sync.store.get("p")
    assert rec.state == "in_progress" and rec.verification != "passed"
    faults_for("dst").corrupt_rate = 0.0
    assert sync.cutover().phase == "cut_over" and equal(sync)
