"""No SQLite write transaction is held across a network call: every connector call of a sync
(bulk copy, catch-up, passes, cutover, writes after cutover, rollback) and of the writer
(stragglers included) finds the state store outside a transaction."""

from __future__ import annotations

import numpy as np

from vmkit.connectors.memory import MemoryConnector
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter

from .helpers import fill


def test_no_write_transaction_across_a_connector_call(tmp_path, monkeypatch):
    fill("memory://src", 1000)
    store = StateStore(tmp_path / "s.db")  # one connection: the sync's and the writer's
    held: list[str] = []
    for name in ("fetch", "upsert", "delete", "scan", "describe"):
        real = getattr(MemoryConnector, name)

        def call(self, *a, _real=real, _name=name, **k):
            if store._db.in_transaction:
                held.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(MemoryConnector, name, call)
    sync = Sync.create("memory://src", "memory://dst", migration_id="t", state=store, batch_size=250)
    w = JournalingWriter("t", store)
    sync.bulk_copy()
    w.upsert(RecordBatch([1, 2000], np.ones((2, 8)), [{"v": 1}, {"v": 1}]))
    w.delete([3])
    sync.catch_up()
    sync.verify()
    real_phase = JournalingWriter._phase
    monkeypatch.setattr(JournalingWriter, "_phase", lambda self: ("verified", real_phase(self)[1]))
    sync.cutover()
    w.upsert(RecordBatch([4], np.ones((1, 8)), [{"v": 2}]))  # a straggler: brought along
    monkeypatch.setattr(JournalingWriter, "_phase", real_phase)
    w.upsert(RecordBatch([5], np.ones((1, 8)), [{"v": 2}]))  # after cutover
    sync.rollback()
    assert held == []
