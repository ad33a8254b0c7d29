"""The sync journal and its state row: tables of their own in the state file, written by
vmkit.sync (its JournalingWriter appends the events) and read by status views.

Vector databases have no change stream, so the application writes through a JournalingWriter
while a migration runs. Before cutover it writes the SOURCE, then appends one event per record,
``(seq, namespace, id, op, content hash, time)``, in one transaction per write call. After
cutover it writes the TARGET first, journals with side='target', and mirrors to the source.

An event carries no data but the content hash: it is applied by re-reading its id on the
leading side, once the source shows that hash (``sync_apply``), so applying is idempotent,
last-state-wins, and safe on a source that shows writes late. A process dying between its data
write and its journal append leaves a change without an event: the passes find and repair it.

Writes pause (wait, never fail) only while a cutover or rollback drains the last events; a
writer whose journal append lands after such a switch re-applies its ids on the new leader.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, Sequence

import orjson

from vmkit.core.records import RecordId
from vmkit.state.store import StateStore, held_row

Key = tuple[str, RecordId]
SOURCE_LEADS = ("pending", "bulk", "catch_up", "verified")
PAUSED = ("cutting_over", "rolling_back")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, migration_id TEXT NOT NULL, side TEXT NOT NULL,
  namespace TEXT NOT NULL, record_id TEXT NOT NULL, id_is_int INTEGER NOT NULL,
  op TEXT NOT NULL, content_hash TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sync_journal_by_side ON sync_journal (migration_id, side, seq);
CREATE INDEX IF NOT EXISTS sync_journal_by_id ON sync_journal (migration_id, record_id);
CREATE TABLE IF NOT EXISTS sync_state (
  migration_id TEXT PRIMARY KEY, mode TEXT NOT NULL, phase TEXT NOT NULL, cursor TEXT,
  scan_done INTEGER NOT NULL DEFAULT 0, applied_seq INTEGER NOT NULL DEFAULT 0,
  reverse_applied_seq INTEGER NOT NULL DEFAULT 0, clean_passes INTEGER NOT NULL DEFAULT 0,
  passes INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
  rows_read INTEGER NOT NULL DEFAULT 0, rows_written INTEGER NOT NULL DEFAULT 0,
  rows_dropped INTEGER NOT NULL DEFAULT 0, events_applied INTEGER NOT NULL DEFAULT 0,
  repaired INTEGER NOT NULL DEFAULT 0, last_pass TEXT, cutover TEXT, reverse_plan TEXT,
  freeze_s REAL, updated_at REAL NOT NULL)
"""
_READY: "weakref.WeakSet[StateStore]" = weakref.WeakSet()


def ensure_tables(store: StateStore) -> None:
    if store not in _READY:
        with store.transaction() as db:
            for stmt in _SCHEMA.strip().split(";"):
                db.execute(stmt)
        _READY.add(store)


_COLS = ("migration_id", "mode", "phase", "cursor", "scan_done", "applied_seq", "reverse_applied_seq",
         "clean_passes", "passes", "chunks", "rows_read", "rows_written", "rows_dropped", "events_applied",
         "repaired", "last_pass", "cutover", "reverse_plan", "freeze_s", "updated_at")


def read_row(store: StateStore, mid: str) -> Any:
    """The sync row (attributes named as the columns; JSON columns decoded), or None."""
    if store not in _READY:
        if not store.query("SELECT 1 FROM sqlite_master WHERE name='sync_state'"):
            return None
        _READY.add(store)  # the tables exist (creating them again would change nothing)
    rows = store.query(f"SELECT {', '.join(_COLS)} FROM sync_state WHERE migration_id=?", mid)
    if not rows:
        return None
    d = dict(zip(_COLS, rows[0]))
    for name in ("last_pass", "cutover"):
        d[name] = orjson.loads(d[name]) if d[name] else None
    return SimpleNamespace(**d)


def update_row(db: Any, mid: str, **changes: Any) -> None:
    """Inside a transaction: set columns (dicts stored as JSON); ``name=("+", n)`` adds n."""
    sets, args = ["updated_at=?"], [time.time()]  # type: list[str], list[Any]
    for name, value in changes.items():
        add = isinstance(value, tuple)
        sets.append(f"{name}={name}+?" if add else f"{name}=?")
        args.append(value[1] if add else orjson.dumps(value).decode() if isinstance(value, dict) else value)
    db.execute(f"UPDATE sync_state SET {', '.join(sets)} WHERE migration_id=?", (*args, mid))


def commit(store: StateStore, mid: str, lease: str, **changes: Any) -> None:
    """One transaction: refuse a runner whose lease was taken over, ``update_row``, renew the lease."""
    with store.transaction() as db:
        check_lease(db, mid, lease)
        update_row(db, mid, **changes)
        db.execute("UPDATE migrations SET lease_at=? WHERE id=?", (time.time(), mid))  # renewed too


def check_lease(db: Any, mid: str, lease: str) -> None:
    """Inside a transaction: LeaseHeld unless ``lease`` is still this migration's holder."""
    held_row(db, mid, lease)


def create_row(store: StateStore, mid: str, mode: str) -> None:
    ensure_tables(store)
    with store.transaction() as db:
        db.execute("INSERT INTO sync_state (migration_id, mode, phase, updated_at) VALUES (?,?,?,?)",
                   (mid, mode, "pending", time.time()))


# -- the journal -------------------------------------------------------------------------------
def append(db: Any, mid: str, side: str, keys: Sequence[Key], op: str, hashes: Sequence[str | None]) -> str:
    """Inside a transaction: one event per key. Returns the phase seen in the same transaction
    (it tells a writer whether a cutover or a rollback overtook it)."""
    now = time.time()
    db.executemany("INSERT INTO sync_journal (migration_id, side, namespace, record_id, id_is_int,"
                   " op, content_hash, at) VALUES (?,?,?,?,?,?,?,?)",
                   [(mid, side, ns, str(rid), int(isinstance(rid, int)), op, h, now)
                    for (ns, rid), h in zip(keys, hashes)])
    row = db.execute("SELECT phase FROM sync_state WHERE migration_id=?", (mid,)).fetchone()
    return str(row[0]) if row else "pending"


def head(store: StateStore, mid: str, side: str = "source") -> int:
    return int(store.query("SELECT coalesce(max(seq), 0) FROM sync_journal WHERE migration_id=?"
                           " AND side=?", mid, side)[0][0])


def pending(store: StateStore, mid: str, side: str, after: int) -> int:
    """Events not applied yet: the lag (= head - applied while one migration journals)."""
    return int(store.query("SELECT count(*) FROM sync_journal WHERE migration_id=? AND side=?"
                           " AND seq>?", mid, side, after)[0][0])


def events(store: StateStore, mid: str, side: str, after: int, upto: int, limit: int) -> list[tuple[int, Key]]:
    rows = store.query("SELECT seq, namespace, record_id, id_is_int FROM sync_journal WHERE migration_id=?"
                       " AND side=? AND seq>? AND seq<=? ORDER BY seq LIMIT ?", mid, side, after, upto, limit)
    return [(seq, (ns, int(rid) if is_int else rid)) for seq, ns, rid, is_int in rows]


def keys_between(store: StateStore, mid: str, side: str, low: int, high: int) -> set[Key]:
    """Ids with events in (low, high]: a watermark window."""
    rows = store.query("SELECT DISTINCT namespace, record_id, id_is_int FROM sync_journal WHERE"
                       " migration_id=? AND side=? AND seq>? AND seq<=?", mid, side, low, high)
    return {(ns, int(rid) if is_int else rid) for ns, rid, is_int in rows}


# -- status ------------------------------------------------------------------------------------
@dataclass
class SyncStatus:
    id: str
    mode: str
    phase: str
    applied_seq: int
    head: int
    lag: int
    reverse_applied_seq: int
    reverse_head: int
    reverse_lag: int
    clean_passes: int
    counters: dict[str, int]  # chunks, rows_read/written/dropped, events_applied, passes, repaired
    last_pass: dict[str, Any] | None
    cutover: dict[str, Any] | None
    freeze_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        c, lp, cut = self.counters, self.last_pass, self.cutover or {}
        out = [f"sync {self.id} ({self.mode}): {self.phase}",
               f"  bulk copy: {c['chunks']} chunks, {c['rows_read']} read, {c['rows_written']} written, "
               f"{c['rows_dropped']} dropped by watermarks",
               f"  journal: applied {self.applied_seq} of head {self.head} (lag {self.lag}); "
               f"{c['events_applied']} ids re-read and applied"]
        if self.reverse_head:
            out.append(f"  reverse journal: applied {self.reverse_applied_seq} of head {self.reverse_head} "
                       f"(lag {self.reverse_lag})")
        out.append(f"  verification passes: {c['passes']}, {self.clean_passes} clean in a row, "
                   f"{c['repaired']} ids repaired" + (f"; last {lp['summary']}" if lp else ""))
        if self.freeze_s is not None:
            out.append(f"  write freeze: {self.freeze_s:.3f} s (no journal: minimal downtime, not zero)")
        if cut:
            out.append(f"  cutover: {cut['message']} (writes paused {cut.get('pause_s', 0):.3f} s)")
        if cut.get("rollback"):
            out.append(f"  rollback: {cut['rollback']} (writes paused {cut.get('rollback_pause_s', 0):.3f} s)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        first, *rest = self.lines()
        return (f"<div style='font-family:monospace'><b>{html.escape(first)}</b><br>"
                + "<br>".join(html.escape(line) for line in rest) + "</div>")


def sync_status(store: StateStore, migration_id: str) -> SyncStatus | None:
    """Phase, applied seq, head, lag, clean passes and cutover info; None when the migration
    is not a sync (for ``vmkit status``, the widgets panel and the CLI)."""
    r = read_row(store, migration_id)
    if r is None:
        return None
    names = ("chunks", "rows_read", "rows_written", "rows_dropped", "events_applied", "passes", "repaired")
    return SyncStatus(
        migration_id, r.mode, r.phase, r.applied_seq, head(store, migration_id, "source"),
        pending(store, migration_id, "source", r.applied_seq), r.reverse_applied_seq,
        head(store, migration_id, "target"), pending(store, migration_id, "target", r.reverse_applied_seq),
        r.clean_passes, {n: getattr(r, n) for n in names}, r.last_pass, r.cutover, r.freeze_s)
