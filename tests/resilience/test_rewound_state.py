"""A rewound state file (an older copy restored before resuming) only costs replays; a
corrupt or truncated one is a loud error, never a silent restart from zero.

What a real backup and restore looks like, and what is tested here:

- an online copy with SQLite's backup API while the runner works (``sqlite3 state.db
  ".backup copy.db"``): a consistent snapshot of one committed moment;
- a cold copy of ``state.db`` *and* ``state.db-wal`` while no runner writes (after a kill -9
  the committed batches may live only in the -wal file);
- ``PRAGMA wal_checkpoint(TRUNCATE)`` first, then a copy of ``state.db`` alone;
- restoring means replacing ``state.db`` and removing any ``-wal``/``-shm`` left beside it.

A copy of ``state.db`` alone after a kill (the -wal forgotten) is a valid but older store;
it is tested too: it never produces a wrong target.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from resilience.helpers import (
    assert_resumable,
    cli,
    contents,
    ledger,
    max_acked,
    memory_source,
    snapshot,
    wait_for_ack,
)
from typer.testing import CliRunner

from vmkit import Migration, TargetSpec, connect
from vmkit.cli import app
from vmkit.connectors.memory import faults_for
from vmkit.core.errors import StateCorrupt
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

N, BATCH = 2000, 100
BATCHES = N // BATCH
NAN_EVERY = 97  # one source record in 97 has a NaN component: rejected, dead-lettered


@pytest.fixture
def work():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="vmkit-rewind-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def source_with_rejects() -> dict:
    conn = connect("memory://src")
    conn.create(TargetSpec("src", 8, "dot"))
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((N, 8)).astype(np.float32)
    vectors[::NAN_EVERY, 2] = np.nan
    conn.upsert(RecordBatch([f"r{i:05d}" for i in range(N)], vectors, [{"i": i} for i in range(N)]))
    return snapshot("memory://src")


def expected_target(src: dict) -> dict:
    return {k: v for k, v in src.items() if not np.isnan(np.frombuffer(v[0], np.float32)).any()}


def online_backup(db: Path, dest: Path) -> None:
    """What ``sqlite3 state.db ".backup dest"`` does, while the runner may be working."""
    with sqlite3.connect(db) as live, sqlite3.connect(dest) as copy:
        live.backup(copy)
    live.close()
    copy.close()


def cold_copy(db: Path, dest: Path) -> None:
    """The database file and its -wal, copied while no runner writes."""
    shutil.copyfile(db, dest)
    if Path(f"{db}-wal").exists():
        shutil.copyfile(f"{db}-wal", f"{dest}-wal")


def restore(copy: Path, db: Path) -> None:
    """Put the copy in place; a -wal/-shm beside the old file must go (never mix them)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, db)
    if Path(f"{copy}-wal").exists():
        shutil.copyfile(f"{copy}-wal", f"{db}-wal")


@pytest.mark.parametrize("method", ["cold-copy-with-wal", "checkpoint-then-copy"])
@pytest.mark.parametrize("at", [0, 1, 5], ids=["from-the-start", "after-1-batch", "after-5-batches"])
def test_resume_from_an_older_copy_ends_equal(work, at, method):
    """Copies taken between runs (``max_batches``): the copy holds no lease."""
    src = source_with_rejects()
    db, copy = work / "state.db", work / "copy.db"
    m = Migration.create("memory://src", "memory://dst", migration_id="m", state=db,
                         batch_size=BATCH, sample_rate=0.2)
    if at:
        m.run(max_batches=at)  # the runner returns: nothing is being written now
    if method == "checkpoint-then-copy":
        m.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(db, copy)
    else:
        cold_copy(db, copy)
    st = m.run()
    assert st.state == "completed"
    m.store.close()
    assert snapshot("memory://dst") == expected_target(src)
    calls = faults_for("dst").calls["upsert"]

    restore(copy, db)
    back = Migration.open("m", db)
    rec = back.store.get("m")
    assert rec.batches == at and rec.state == ("not_started" if at == 0 else "in_progress")
    st = back.run()
    assert faults_for("dst").calls["upsert"] - calls == BATCHES - at  # replays only what follows
    assert st.state == "completed" and st.verification == "passed"
    assert snapshot("memory://dst") == expected_target(src)
    rejected = N - len(expected_target(src))
    assert st.records_read == N and st.records_rejected == rejected  # no double counting
    assert st.records_written == N - rejected and st.balanced and st.batches == BATCHES
    rows = back.store.query("SELECT record_id FROM rejections WHERE migration_id='m'")
    assert len(rows) == len({r[0] for r in rows}) == rejected
    seqs = [r[0] for r in ledger(back.store, "m")]
    assert seqs == list(range(1, BATCHES + 1))
    back.store.close()


def test_online_backup_restored_in_the_same_process(work):
    src = source_with_rejects()
    db, copy = work / "state.db", work / "copy.db"
    m = Migration.create("memory://src", "memory://dst", migration_id="m", state=db,
                         batch_size=BATCH)
    m.run(on_batch=lambda p: online_backup(db, copy) if p.batches == 5 else None)
    m.store.close()
    restore(copy, db)
    st = Migration.open("m", db).run()
    assert st.state == "completed" and snapshot("memory://dst") == expected_target(src)


def test_online_backup_of_a_running_cli_restored_later(work):
    """The backup a cron job takes while ``vmkit migrate`` runs; restored after that runner
    exited, and resumed by a new process (which takes the dead runner's lease over)."""
    source = "synthetic://s?n=2000&dim=8&seed=9&metric=dot"
    target = f"qdrant://{work}/t?collection=c"
    db, copy, log = work / "state.db", work / "copy.db", work / "run.log"
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", "o",
                "--batch-size", "100", "--no-progress"], db, log)
    assert wait_for_ack(proc, log, above=5)
    online_backup(db, copy)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0 and "full verification: passed" in out, out
    with sqlite3.connect(copy) as c:
        at, pid = c.execute("SELECT batches, lease_pid FROM migrations WHERE id='o'").fetchone()
    c.close()
    assert 5 <= at < 20 and pid == proc.pid  # mid-run, the runner's lease inside

    restore(copy, db)
    log2 = work / "resume.log"
    done = cli(["migrate", "resume", "--id", "o", "--no-progress"], db, log2)
    out = done.communicate(timeout=300)[0].decode()
    assert done.returncode == 0 and "full verification: passed" in out, out
    assert max_acked(log2) == 20  # the resume replayed batches at+1..20
    text = log2.read_text()
    assert f"batch {at} acknowledged" not in text and f"batch {at + 1} acknowledged" in text
    assert contents(target) == synthetic_records(source)
    store = StateStore(db)
    events = [e for (e,) in store.query("SELECT detail FROM events WHERE event='lease taken over'")]
    assert any(f"dead pid {proc.pid}" in e for e in events)
    st = store.get("o")
    assert st.records_read == 2000 and st.batches == 20
    store.close()


def synthetic_records(uri: str) -> dict:
    with connect(uri) as s:
        n = s.count()
        return {rid: (np.asarray(v, np.float32).tobytes(), meta)
                for rid, v, meta, _ in s.scan(None, n)[0].rows()}


def test_target_rewound_behind_the_checkpoint_is_caught(work):
    """The reverse: the target restored from an older backup, the state file not. Resume
    cannot know, but full verification names every lost record and nothing completes."""
    src = snapshot(memory_source(n=N))
    m = Migration.create("memory://src", "memory://dst", migration_id="m", state=work / "s.db",
                         batch_size=BATCH)
    m.run(max_batches=5)
    lost = sorted(rid for _, rid in snapshot("memory://dst"))[100:130]
    connect("memory://dst").delete(lost)
    st = m.run()
    assert st.state == "in_progress" and st.verification == "failed"
    detail = st.verification_detail
    assert detail["missing_count"] == 30 and sorted(r for _, r in detail["missing"]) == lost
    assert detail["extra_count"] == detail["mismatched_count"] == 0
    assert len(snapshot("memory://dst")) == len(src) - 30


# -- after a real kill -9: the WAL holds the committed batches ----------------------------------

def _cli(args: list[str], state: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmkit", *args, "--state", str(state)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_restoring_a_killed_runners_state(work):
    source = "synthetic://s?n=1500&dim=8&seed=5&metric=dot"
    target = f"qdrant://{work}/t?collection=c"
    db = work / "state.db"
    start = ["migrate", "start", "--source", source, "--target", target, "--id", "k",
             "--batch-size", "100", "--no-progress"]
    killed = _cli(start, db, {"VMKIT_CRASH_AT": "after_ack:6"})
    assert killed.returncode == -9
    assert Path(f"{db}-wal").exists() and os.path.getsize(f"{db}-wal") > 0

    with_wal, checkpointed, db_only = work / "a" / "state.db", work / "b" / "state.db", work / "c" / "state.db"
    for p in (with_wal, checkpointed, db_only):
        p.parent.mkdir()
    cold_copy(db, with_wal)
    shutil.copyfile(db, db_only)  # the -wal forgotten
    shutil.copytree(work, work / "ckpt", ignore=shutil.ignore_patterns("a", "b", "c", "t"))
    with sqlite3.connect(work / "ckpt" / "state.db") as c:
        assert c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    c.close()
    shutil.copyfile(work / "ckpt" / "state.db", checkpointed)

    for copy in (with_wal, checkpointed):
        store = StateStore(copy)
        assert store.get("k").batches == 5  # the 6th was acknowledged, never committed
        store.close()

    # the db file alone is an older, valid store: here one without the migration at all.
    # Resuming says so in one line and writes nothing.
    out = _cli(["migrate", "resume", "--id", "k", "--no-progress"], db_only)
    assert out.returncode == 2 and out.stderr.strip() == "error: no migration with id 'k' in the state store"

    restore(with_wal, db)
    done = _cli(["migrate", "resume", "--id", "k", "--no-progress"], db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "full verification: passed" in done.stdout
    assert contents(target) == synthetic_records(source)


# -- corrupt and truncated files ------------------------------------------------------------------

def _page_of(db: Path, table: str) -> tuple[int, int]:
    with sqlite3.connect(db) as c:
        size = c.execute("PRAGMA page_size").fetchone()[0]
        root, kind, owner = c.execute("SELECT rootpage, type, tbl_name FROM sqlite_master WHERE name=?",
                                      (table,)).fetchone()
        rows = c.execute(f"SELECT count(*) FROM {owner}").fetchone()[0]
    c.close()
    assert rows > 0  # the page holds data
    return root, size


def _garbage_page(table: str):
    def damage(db: Path, good: bytes) -> bytes:
        root, size = _page_of(db, table)
        data = bytearray(good)
        data[(root - 1) * size: root * size] = random.Random(root).randbytes(size)
        return bytes(data)
    return damage


CORRUPTIONS = {
    "zero-length": lambda db, good: b"",
    "truncated-to-one-page": lambda db, good: good[:4096],
    "truncated-by-half": lambda db, good: good[: len(good) // 2],
    "truncated-by-100-bytes": lambda db, good: good[:-100],
    "garbage-header": lambda db, good: b"this is not sqlite" + good[18:],
    "garbage-page-batches": _garbage_page("batches"),
    "garbage-page-migrations": _garbage_page("migrations"),
    "garbage-page-rejections": _garbage_page("rejections"),
    "garbage-page-rejections-index": _garbage_page("rejections_by_migration"),
    "garbage-page-events": _garbage_page("events"),
}


@pytest.fixture
def damaged(work):
    """A state file 7 batches into a migration (with dead letters), and a way to damage a
    copy of it. The memory target keeps what was written, to prove nothing more is."""
    source_with_rejects()
    db = work / "state.db"
    m = Migration.create("memory://src", "memory://dst", migration_id="m", state=db, batch_size=BATCH)
    m.run(max_batches=7)
    assert_resumable(m.store, "m")
    m.store.close()
    good = db.read_bytes()
    assert not Path(f"{db}-wal").exists()  # closed cleanly: everything is in state.db

    def make(kind: str) -> Path:
        bad = work / f"{kind}.db"
        bad.write_bytes(CORRUPTIONS[kind](db, good))
        return bad
    return make


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_state_never_restarts_silently(damaged, kind):
    bad = damaged(kind)
    calls = dict(faults_for("dst").calls)
    with pytest.raises(StateCorrupt):  # an empty file too: never taken for a new store
        Migration.open("m", bad).run()
    assert faults_for("dst").calls == calls  # not one read or write of the target


def _invoke(args: list[str]):
    logger = logging.getLogger("vmkit")
    handlers, level = list(logger.handlers), logger.level
    try:
        return CliRunner().invoke(app, args)
    finally:
        logger.handlers, logger.level = handlers, level


CLI_TRACEBACK = ("garbage-page-migrations", "garbage-page-rejections-index", "garbage-page-events")
UNREADABLE = ("zero-length", "truncated-to-one-page", "truncated-by-half", "garbage-header")


def _cli_case(command: str, kind: str):
    args = {"resume": ["migrate", "resume", "--id", "m", "--no-progress"],
            "status": ["status", "--id", "m"], "rollback": ["migrate", "rollback", "--id", "m"]}
    return pytest.param(args[command], kind, id=f"{command}-{kind}")


@pytest.mark.parametrize("command,kind", [
    *[_cli_case("resume", k) for k in CORRUPTIONS],
    # status and rollback read less: they must fail loudly when that much is unreadable
    *[_cli_case(c, k) for c in ("status", "rollback") for k in (*UNREADABLE, "garbage-page-migrations")],
])
def test_corrupt_state_is_one_error_line(damaged, kind, command):
    bad = damaged(kind)
    calls = dict(faults_for("dst").calls)
    result = _invoke([*command, "--state", str(bad)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert faults_for("dst").calls == calls


def test_start_on_a_truncated_state_file_does_not_restart_from_zero(damaged):
    bad = damaged("zero-length")
    calls = faults_for("dst").calls.get("upsert", 0)
    result = _invoke(["migrate", "start", "--source", "memory://src", "--target", "memory://dst",
                      "--id", "m", "--batch-size", str(BATCH), "--no-progress", "--state", str(bad)])
    assert faults_for("dst").calls.get("upsert", 0) == calls, "re-copied from zero"
    assert result.exit_code == 2, result.output
