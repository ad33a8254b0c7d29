"""The partition ledger: an acknowledgement commits only from its partition's committed cursor
(a chunk that ran twice is refused the second time), the migration's totals move with it, and
a runner that lost its lease commits nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmkit.core.errors import LeaseHeld
from vmkit.state import partitions as ledger
from vmkit.state.store import BatchCommit, StateStore


def _batch(before: str | None, after: str | None, n: int = 10) -> BatchCommit:
    return BatchCommit(before, after, n, n, [], "0" * 16, 0.0)


def test_acknowledgements_commit_in_order_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.create("m", "synthetic://x", "sink://y", {})
    store.transition("m", "in_progress")
    lease = store.acquire_lease("m")
    ledger.register(store, "m", [{"key": k, "namespace": "", "lower": None, "upper": None, "estimated": 20}
                                 for k in ("a", "b")])
    assert ledger.commit_chunk(store, "m", lease, "a", None, [_batch(None, "1"), _batch("1", "2")]) == [1, 2]
    with pytest.raises(ledger.StaleChunk):  # the same chunk again (a worker lost after it finished)
        ledger.commit_chunk(store, "m", lease, "a", None, [_batch(None, "1")])
    assert ledger.commit_chunk(store, "m", lease, "b", None, [_batch(None, None)]) == [3]
    rec = store.get("m")
    assert (rec.batches, rec.records_read, rec.records_written, rec.scan_done) == (3, 30, 30, False)
    assert ledger.commit_chunk(store, "m", lease, "a", "2", [_batch("2", None, 5)]) == [4]
    assert store.get("m").scan_done  # every partition read to its end
    with pytest.raises(ledger.StaleChunk):
        ledger.commit_chunk(store, "m", lease, "a", "2", [_batch("2", None, 5)])
    rows = {r.key: r for r in ledger.rows(store, "m")}
    assert (rows["a"].records_read, rows["a"].batches, rows["a"].cursor) == (25, 3, None)
    tagged = store.query("SELECT seq, key FROM partition_batches WHERE migration_id='m' ORDER BY seq")
    assert tagged == [(1, "a"), (2, "a"), (3, "b"), (4, "a")]


def test_a_runner_without_the_lease_commits_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.create("m", "synthetic://x", "sink://y", {})
    store.transition("m", "in_progress")
    store.acquire_lease("m")
    ledger.register(store, "m", [{"key": "a", "namespace": "", "lower": None, "upper": None, "estimated": 1}])
    with pytest.raises(LeaseHeld):
        ledger.commit_chunk(store, "m", "not-the-lease", "a", None, [_batch(None, None)])
    assert store.get("m").records_read == 0
