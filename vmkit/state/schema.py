"""The state file's schema: its tables, the migration states and their transitions, the rows
read from it (MigrationRecord) and written per batch (BatchCommit), and how a new file is made."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from vmkit.core.records import Rejection

SCHEMA_VERSION = 1
STATES = ("not_started", "in_progress", "completed", "rolled_back")
NEXT_STATES = {"not_started": {"in_progress"}, "in_progress": {"completed", "rolled_back"}}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS migrations (
  id TEXT PRIMARY KEY, source_uri TEXT NOT NULL, target_uri TEXT NOT NULL,
  state TEXT NOT NULL, plan_json TEXT, plan_hash TEXT, options_json TEXT,
  cursor TEXT, scan_done INTEGER NOT NULL DEFAULT 0,
  batches INTEGER NOT NULL DEFAULT 0, records_read INTEGER NOT NULL DEFAULT 0,
  records_written INTEGER NOT NULL DEFAULT 0,
  stop_requested INTEGER NOT NULL DEFAULT 0, created_target INTEGER NOT NULL DEFAULT 0,
  verification TEXT, verification_json TEXT,
  lease_owner TEXT, lease_pid INTEGER, lease_host TEXT, lease_at REAL,
  created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  migration_id TEXT NOT NULL, seq INTEGER NOT NULL, cursor_before TEXT, cursor_after TEXT,
  read INTEGER NOT NULL, written INTEGER NOT NULL, rejected INTEGER NOT NULL,
  checksum TEXT, duration_s REAL, committed_at REAL NOT NULL,
  PRIMARY KEY (migration_id, seq));
CREATE TABLE IF NOT EXISTS validations (
  migration_id TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL, missing INTEGER NOT NULL,
  mean_cos REAL, min_cos REAL, max_cos REAL, failures INTEGER NOT NULL, completeness REAL,
  at REAL NOT NULL, PRIMARY KEY (migration_id, seq));
CREATE TABLE IF NOT EXISTS rejections (
  migration_id TEXT NOT NULL, namespace TEXT NOT NULL, record_id TEXT NOT NULL,
  id_is_int INTEGER NOT NULL, reason TEXT NOT NULL, field TEXT NOT NULL, seq INTEGER);
CREATE INDEX IF NOT EXISTS rejections_by_migration ON rejections (migration_id, reason);
CREATE TABLE IF NOT EXISTS errors (
  migration_id TEXT NOT NULL, at REAL NOT NULL, seq INTEGER, kind TEXT NOT NULL,
  message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  migration_id TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL, detail TEXT);
"""


def default_state_path() -> Path:
    return Path(os.environ.get("VMKIT_STATE") or Path.cwd() / ".vmkit" / "state.db")


@dataclass
class MigrationRecord:
    id: str
    source_uri: str
    target_uri: str
    state: str
    plan_json: str | None
    plan_hash: str | None
    options: dict[str, Any]
    cursor: str | None
    scan_done: bool
    batches: int
    records_read: int
    records_written: int
    stop_requested: bool
    created_target: bool
    verification: str | None
    verification_detail: dict[str, Any] | None
    lease_owner: str | None
    lease_pid: int | None
    lease_host: str | None
    lease_at: float | None
    created_at: float
    updated_at: float


@dataclass
class BatchCommit:
    cursor_before: str | None
    cursor_after: str | None
    read: int
    written: int
    rejections: list[Rejection]
    checksum: str
    duration_s: float


def create_store_file(path: Path) -> None:
    """A new store, built beside ``path`` and hard-linked into place: a store vmkit is still
    creating is never seen empty (so an empty file is always a damaged one), and a store
    another process made meanwhile is kept, not replaced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")  # kept in the file header
            db.executescript(SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def record_of(d: dict[str, Any]) -> MigrationRecord:
    return MigrationRecord(
        id=d["id"], source_uri=d["source_uri"], target_uri=d["target_uri"], state=d["state"],
        plan_json=d["plan_json"], plan_hash=d["plan_hash"],
        options=orjson.loads(d["options_json"] or "{}"), cursor=d["cursor"],
        scan_done=bool(d["scan_done"]), batches=d["batches"], records_read=d["records_read"],
        records_written=d["records_written"], stop_requested=bool(d["stop_requested"]),
        created_target=bool(d["created_target"]), verification=d["verification"],
        verification_detail=orjson.loads(d["verification_json"]) if d["verification_json"] else None,
        lease_owner=d["lease_owner"], lease_pid=d["lease_pid"], lease_host=d["lease_host"],
        lease_at=d["lease_at"], created_at=d["created_at"], updated_at=d["updated_at"],
    )
