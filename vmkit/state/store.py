"""SQLite state store: migrations, checkpoints, the batch ledger, validation, rejections, errors.

Durability rules: WAL with ``synchronous=FULL`` (a kill -9 never loses a committed transaction),
``BEGIN IMMEDIATE`` for every write, a busy timeout, a schema version, an integrity check when a
migration is resumed, and file mode 0600. URIs are checked for credentials before they get here;
nothing secret is ever stored. The tables and rows are in ``schema``, the runner lease's rows in
``leasing``.

Default location: ``./.vmkit/state.db`` relative to the working directory, or ``$VMKIT_STATE``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

from vmkit.core import crashpoints
from vmkit.core.errors import IllegalTransition, StateCorrupt, StateError, UnknownMigration
from vmkit.core.records import SOURCE_UNREADABLE
from vmkit.state.leasing import LeaseRecords, held_row
from vmkit.state.schema import (  # the rows and schema are re-exported: callers import them from here
    NEXT_STATES,
    SCHEMA,
    SCHEMA_VERSION,
    STATES,
    BatchCommit,
    MigrationRecord,
    create_store_file,
    default_state_path,
    record_of,
)

__all__ = ["STATES", "SCHEMA_VERSION", "BatchCommit", "MigrationRecord", "StateStore", "default_state_path",
           "held_row"]


class StateStore(LeaseRecords):
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_state_path()
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            create_store_file(self.path)
        elif self.path.stat().st_size == 0:  # vmkit never leaves one: see _create_store_file
            raise StateCorrupt(f"{self.path} is empty (0 bytes), so it holds no migrations: truncated, "
                               "or copied without its content? Restore a backup (with its -wal file); "
                               "delete it only to start a new state store")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            if mode.lower() != "wal":
                raise StateCorrupt(f"{self.path}: could not enable WAL (got {mode})")
            self._init_schema()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise StateCorrupt(f"{self.path} is not a usable vmkit state file: {exc}") from None
            raise StateError(f"{self.path} is locked by another process (a runner inside a "
                             f"checkpoint?); see `vmkit status` once it is free: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StateCorrupt(f"{self.path} is not a usable vmkit state file: {exc}") from None

    def _init_schema(self) -> None:
        with self._tx() as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "meta" not in tables:  # never adopt someone else's database
                raise StateCorrupt(f"{self.path} is an SQLite file but not a vmkit state file "
                                   f"(tables: {', '.join(sorted(tables)[:5])})")
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    db.execute(stmt)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                if tables:
                    raise StateCorrupt(f"{self.path}: vmkit tables present but no schema version")
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StateError(f"{self.path} has schema version {row[0]}; this vmkit reads {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._corruption_is_loud():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _corruption_is_loud(self) -> Iterator[None]:
        """A damaged page surfaces as sqlite3.DatabaseError itself (its subclasses are
        ordinary errors: constraints, locks): report it as StateCorrupt, never carry on."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:
                raise StateCorrupt(f"{self.path} is damaged: {exc}; restore a backup") from None
            raise

    def transaction(self) -> Any:
        """``with store.transaction() as db:`` one BEGIN IMMEDIATE transaction, for modules that
        keep tables of their own in the same file (the sync journal)."""
        return self._tx()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def check_integrity(self) -> None:
        with self._lock:
            try:
                result = self._db.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:
                raise StateCorrupt(f"{self.path}: integrity check failed: {exc}") from None
        if [r[0] for r in result] != ["ok"]:
            raise StateCorrupt(f"{self.path}: integrity check failed: {result[:3]}")

    # -- migrations ------------------------------------------------------------------------
    def create(self, mid: str, source_uri: str, target_uri: str, options: dict[str, Any]) -> None:
        now = time.time()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM migrations WHERE id=?", (mid,)).fetchone():
                raise StateError(f"migration '{mid}' already exists")
            db.execute(
                "INSERT INTO migrations (id, source_uri, target_uri, state, options_json,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                (mid, source_uri, target_uri, "not_started", orjson.dumps(options).decode(), now, now),
            )
            self._event(db, mid, "created")

    def get(self, mid: str) -> MigrationRecord:
        with self._lock, self._corruption_is_loud():
            cur = self._db.execute("SELECT * FROM migrations WHERE id=?", (mid,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            raise UnknownMigration(mid)
        return record_of(dict(zip(names, row)))

    def exists(self, mid: str) -> bool:
        with self._lock, self._corruption_is_loud():
            return self._db.execute("SELECT 1 FROM migrations WHERE id=?", (mid,)).fetchone() is not None

    def migrations(self) -> list[MigrationRecord]:
        with self._lock, self._corruption_is_loud():
            cur = self._db.execute("SELECT * FROM migrations ORDER BY created_at")
            names = [d[0] for d in cur.description]
            return [record_of(dict(zip(names, r))) for r in cur.fetchall()]

    def transition(self, mid: str, new: str, detail: str = "", lease: str | None = None) -> None:
        """Move to state ``new``; with ``lease``, only while that runner still holds the lease
        (a runner whose lease was taken over cannot change state)."""
        with self._tx() as db:
            (state,) = held_row(db, mid, lease, "state")
            if new not in NEXT_STATES.get(state, set()):
                raise IllegalTransition(mid, state, new)
            db.execute("UPDATE migrations SET state=?, updated_at=? WHERE id=?", (new, time.time(), mid))
            self._event(db, mid, f"{state} -> {new}", detail)

    def set_plan(self, mid: str, plan_json: str, plan_hash: str) -> None:
        with self._tx() as db:
            _must_update(db.execute("UPDATE migrations SET plan_json=?, plan_hash=?, updated_at=? WHERE id=?",
                                    (plan_json, plan_hash, time.time(), mid)), mid)

    def set_options(self, mid: str, options: dict[str, Any], detail: str = "") -> None:
        with self._tx() as db:
            _must_update(db.execute("UPDATE migrations SET options_json=?, updated_at=? WHERE id=?",
                                    (orjson.dumps(options).decode(), time.time(), mid)), mid)
            self._event(db, mid, "options changed", detail)

    def set_flag(self, mid: str, name: str, value: bool) -> None:
        if name not in {"stop_requested", "created_target"}:
            raise ValueError(name)
        with self._tx() as db:
            _must_update(db.execute(f"UPDATE migrations SET {name}=? WHERE id=?", (int(value), mid)), mid)
            if name == "stop_requested" and value:
                self._event(db, mid, "stop requested")

    def set_verification(self, mid: str, outcome: str, detail: dict[str, Any]) -> None:
        with self._tx() as db:
            _must_update(db.execute(
                "UPDATE migrations SET verification=?, verification_json=?, updated_at=? WHERE id=?",
                (outcome, orjson.dumps(detail).decode(), time.time(), mid)), mid)
            self._event(db, mid, f"verification {outcome}")

    # -- the per-batch checkpoint ----------------------------------------------------------
    def commit_batch(self, mid: str, lease: str, batch: BatchCommit, scan_done: bool) -> int:
        """One transaction: cursor, counters, ledger row, rejections. Returns the batch seq.

        Called only after the target acknowledged the write. Refuses a runner whose lease was
        taken over, so two processes can never both advance the cursor.
        """
        now = time.time()
        with self._tx() as db:
            batches, state = held_row(db, mid, lease, "batches, state")
            if state != "in_progress":
                raise IllegalTransition(mid, state, "in_progress (checkpoint)")
            seq = batches + 1
            crashpoints.hit("inside_commit")
            db.execute(
                "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?)",
                (mid, seq, batch.cursor_before, batch.cursor_after, batch.read, batch.written,
                 len(batch.rejections), batch.checksum, batch.duration_s, now),
            )
            db.executemany(
                "INSERT INTO rejections VALUES (?,?,?,?,?,?,?)",
                [(mid, r.namespace, str(r.record_id), int(isinstance(r.record_id, int)), r.reason,
                  r.field, seq) for r in batch.rejections],
            )
            db.execute(
                "UPDATE migrations SET cursor=?, scan_done=?, batches=?, records_read=records_read+?,"
                " records_written=records_written+?, lease_at=?, updated_at=? WHERE id=?",
                (batch.cursor_after, int(scan_done), seq, batch.read, batch.written, now, now, mid),
            )
        return seq

    def record_validation(self, mid: str, seq: int, stats: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO validations VALUES (?,?,?,?,?,?,?,?,?,?)",
                (mid, seq, stats["n"], stats["missing"], stats["mean_cos"], stats["min_cos"],
                 stats["max_cos"], stats["failures"], stats["completeness"], time.time()),
            )

    def record_error(self, mid: str, seq: int | None, kind: str, message: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO errors VALUES (?,?,?,?,?)", (mid, time.time(), seq, kind, message[:2000]))

    def event(self, mid: str, event: str, detail: str = "") -> None:
        with self._tx() as db:
            self._event(db, mid, event, detail)

    @staticmethod
    def _event(db: sqlite3.Connection, mid: str, event: str, detail: str = "") -> None:
        db.execute("INSERT INTO events VALUES (?,?,?,?)", (mid, time.time(), event, detail))

    # -- reads for status and reports ------------------------------------------------------
    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock, self._corruption_is_loud():
            return self._db.execute(sql, args).fetchall()

    def refused_keys(self, mid: str) -> set[tuple[str, str | int]]:
        """(namespace, source id) of records the target refused, ids in their original kind.
        (Records the plan rejects are re-derived by verification; these cannot be.)"""
        rows = self.query("SELECT namespace, record_id, id_is_int FROM rejections"
                          " WHERE migration_id=? AND field='record'", mid)
        return {(ns, int(rid) if is_int else rid) for ns, rid, is_int in rows}

    def resolve_unreadable(self, mid: str, keys: list[tuple[str, str | int]], lease: str) -> None:
        """Records once dead-lettered as source_unreadable that a repair has now written: their
        rows leave the dead-letter table and they count as written, in one transaction."""
        with self._tx() as db:
            held_row(db, mid, lease)
            gone = 0
            for ns, rid in keys:
                gone += db.execute("DELETE FROM rejections WHERE migration_id=? AND field=? AND namespace=?"
                                   " AND record_id=? AND id_is_int=?",
                                   (mid, SOURCE_UNREADABLE, ns, str(rid), int(isinstance(rid, int)))).rowcount
            db.execute("UPDATE migrations SET records_written=records_written+?, updated_at=? WHERE id=?",
                       (gone, time.time(), mid))
            self._event(db, mid, "unreadable records recovered", str(gone))

    def rejected_count(self, mid: str, field: str | None = None) -> int:
        """Dead-lettered records, or those of one ``field`` (e.g. ``source_unreadable``)."""
        if field is None:
            return int(self.query("SELECT count(*) FROM rejections WHERE migration_id=?", mid)[0][0])
        return int(self.query("SELECT count(*) FROM rejections WHERE migration_id=? AND field=?",
                              mid, field)[0][0])

def _must_update(cursor: sqlite3.Cursor, mid: str) -> None:
    if cursor.rowcount == 0:
        raise UnknownMigration(mid)


