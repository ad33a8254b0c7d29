"""The partition ledger: one row per (migration, partition) with that partition's own resume
cursor, in the same SQLite file as the migration (vmkit.state.store).

Only the coordinator (the process holding the runner lease) writes it. A chunk's
acknowledgement commits in one transaction: its batches' ledger rows (numbered in the
migration's one sequence, each tagged with its partition in ``partition_batches``), their
rejections, the partition's cursor and counts, and the migration's totals, so ``vmkit status``,
reports and verification read the same counters as after an in-process run. A chunk commits
only from the cursor it started at: a chunk that ran twice (a worker lost after finishing it)
is refused the second time, so nothing is counted twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from vmkit.core import crashpoints
from vmkit.core.errors import IllegalTransition, StateError
from vmkit.state.store import BatchCommit, StateStore, held_row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partitions (
  migration_id TEXT NOT NULL, key TEXT NOT NULL, spec_json TEXT NOT NULL, cursor TEXT,
  scan_done INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,
  records_read INTEGER NOT NULL DEFAULT 0, records_written INTEGER NOT NULL DEFAULT 0,
  records_rejected INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
  PRIMARY KEY (migration_id, key));
CREATE TABLE IF NOT EXISTS partition_batches (
  migration_id TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL,
  PRIMARY KEY (migration_id, seq));
"""


@dataclass
class PartitionRow:
    key: str
    spec: dict[str, Any]
    cursor: str | None
    scan_done: bool
    batches: int
    records_read: int
    records_written: int
    records_rejected: int


class StaleChunk(StateError):
    """A chunk's acknowledgement that does not start at the partition's committed cursor."""


def _ensure_schema(store: StateStore) -> None:
    with store.transaction() as db:
        for stmt in _SCHEMA.strip().split(";"):
            if stmt.strip():
                db.execute(stmt)


def register(store: StateStore, mid: str, specs: Sequence[dict[str, Any]], cursor: str | None = None) -> None:
    """Rows for the plan's partitions (kept as they are when already there), starting at
    ``cursor`` (the whole source's cursor, for a migration begun in one process)."""
    _ensure_schema(store)
    now = time.time()
    with store.transaction() as db:
        db.executemany("INSERT OR IGNORE INTO partitions (migration_id, key, spec_json, cursor, updated_at)"
                       " VALUES (?,?,?,?,?)",
                       [(mid, s["key"], orjson.dumps(s).decode(), cursor, now) for s in specs])


def rows(store: StateStore, mid: str) -> list[PartitionRow]:
    if not store.query("SELECT 1 FROM sqlite_master WHERE name='partitions'"):
        return []
    return [PartitionRow(k, orjson.loads(spec), cur, bool(done), b, r, w, j)
            for k, spec, cur, done, b, r, w, j in store.query(
                "SELECT key, spec_json, cursor, scan_done, batches, records_read, records_written,"
                " records_rejected FROM partitions WHERE migration_id=? ORDER BY key", mid)]


def commit_chunk(store: StateStore, mid: str, lease: str, key: str, cursor_before: str | None,
                 batches: Sequence[BatchCommit]) -> list[int]:
    """Commit one acknowledged chunk of partition ``key`` (its batches in order) in one
    transaction; returns the batches' sequence numbers. StaleChunk if the partition's cursor
    moved on (the chunk was already committed); LeaseHeld if this runner lost the lease."""
    now = time.time()
    with store.transaction() as db:
        seq, state = held_row(db, mid, lease, "batches, state")
        if state != "in_progress":
            raise IllegalTransition(mid, state, "in_progress (checkpoint)")
        row = db.execute("SELECT cursor, scan_done FROM partitions WHERE migration_id=? AND key=?",
                         (mid, key)).fetchone()
        if row is None:
            raise StateError(f"migration '{mid}' has no partition {key!r}")
        if row[1] or row[0] != cursor_before:
            raise StaleChunk(f"partition {key!r} of '{mid}' is past this chunk (committed already)")
        crashpoints.hit("inside_commit")
        seqs = []
        for b in batches:
            seq += 1
            seqs.append(seq)
            db.execute("INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (mid, seq, b.cursor_before, b.cursor_after, b.read, b.written,
                        len(b.rejections), b.checksum, b.duration_s, now))
            db.execute("INSERT INTO partition_batches VALUES (?,?,?)", (mid, seq, key))
            db.executemany("INSERT INTO rejections VALUES (?,?,?,?,?,?,?)",
                           [(mid, r.namespace, str(r.record_id), int(isinstance(r.record_id, int)),
                             r.reason, r.field, seq) for r in b.rejections])
        read = sum(b.read for b in batches)
        written = sum(b.written for b in batches)
        rejected = sum(len(b.rejections) for b in batches)
        last = batches[-1].cursor_after if batches else cursor_before
        db.execute("UPDATE partitions SET cursor=?, scan_done=?, batches=batches+?, records_read=records_read+?,"
                   " records_written=records_written+?, records_rejected=records_rejected+?, updated_at=?"
                   " WHERE migration_id=? AND key=?",
                   (last, int(last is None), len(batches), read, written, rejected, now, mid, key))
        open_parts = db.execute("SELECT count(*) FROM partitions WHERE migration_id=? AND scan_done=0",
                                (mid,)).fetchone()[0]
        db.execute("UPDATE migrations SET scan_done=?, batches=?, records_read=records_read+?,"
                   " records_written=records_written+?, lease_at=?, updated_at=? WHERE id=?",
                   (int(open_parts == 0), seq, read, written, now, now, mid))
    return seqs
