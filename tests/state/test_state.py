"""The SQLite state store (vmkit.state.store.StateStore): the migration state machine, durability
PRAGMAs, corrupt files, the per-batch checkpoint, the runner lease, and no secrets on disk."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from vmkit.core.errors import (
    IllegalTransition,
    LeaseHeld,
    StateCorrupt,
    StateError,
    UnknownMigration,
)
from vmkit.core.records import Rejection
from vmkit.state.store import SCHEMA_VERSION, STATES, BatchCommit, StateStore

LEGAL = {("not_started", "in_progress"), ("in_progress", "completed"), ("in_progress", "rolled_back")}
PATH_TO = {  # legal steps that lead from not_started to each state
    "not_started": [],
    "in_progress": ["in_progress"],
    "completed": ["in_progress", "completed"],
    "rolled_back": ["in_progress", "rolled_back"],
}


@pytest.fixture
def store(tmp_path):
    s = StateStore(tmp_path / "state.db")
    yield s
    s.close()


def new_migration(store: StateStore, mid: str = "m1", state: str = "not_started") -> str:
    store.create(mid, "memory://src", "memory://dst", {"batch_size": 10})
    for step in PATH_TO[state]:
        store.transition(mid, step)
    assert store.get(mid).state == state
    return mid


def commit(cursor_after: str | None = "c1", read: int = 10, written: int = 8,
           rejections: list[Rejection] | None = None, cursor_before: str | None = None) -> BatchCommit:
    if rejections is None:
        rejections = [Rejection("bad-1", "vector has NaN or Inf components", "vector", "ns"),
                      Rejection(42, "duplicate id in batch (last kept)", "id", "")]
    return BatchCommit(cursor_before, cursor_after, read, written, rejections, "cafe", 0.01)


def run_py(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, check=False, timeout=timeout)


# -- the state machine -----------------------------------------------------------------------

@pytest.mark.parametrize("current,wanted", list(itertools.product(STATES, STATES)))
def test_every_transition_pair(store, current, wanted):
    mid = new_migration(store, "mig-x", current)
    if (current, wanted) in LEGAL:
        store.transition(mid, wanted)
        assert store.get(mid).state == wanted
        events = [e for (e,) in store.query("SELECT event FROM events WHERE migration_id=?", mid)]
        assert f"{current} -> {wanted}" in events
        return
    with pytest.raises(IllegalTransition) as info:
        store.transition(mid, wanted)
    msg = str(info.value)
    assert "mig-x" in msg and current in msg and wanted in msg
    assert (info.value.current, info.value.wanted) == (current, wanted)
    assert store.get(mid).state == current  # refused means unchanged


def test_the_legal_set_is_exactly_three():
    assert len(STATES) == 4 and len(LEGAL) == 3


@pytest.mark.parametrize("wanted", ["paused", "stopped", "", "COMPLETED"])
def test_unknown_target_states_are_refused(store, wanted):
    mid = new_migration(store, state="in_progress")
    with pytest.raises(IllegalTransition):
        store.transition(mid, wanted)
    assert store.get(mid).state == "in_progress"


@pytest.mark.parametrize("op", [
    lambda s: s.get("nope"),
    lambda s: s.transition("nope", "in_progress"),
    lambda s: s.acquire_lease("nope"),
    lambda s: s.commit_batch("nope", "token", commit(), False),
])
def test_unknown_migration(store, op):
    new_migration(store)  # another migration exists
    with pytest.raises(UnknownMigration, match="'nope'"):
        op(store)


def test_exists_and_list(store):
    assert not store.exists("m1") and store.migrations() == []
    new_migration(store, "m1")
    new_migration(store, "m2")
    assert store.exists("m1") and not store.exists("m3")
    assert [r.id for r in store.migrations()] == ["m1", "m2"]


def test_duplicate_create_is_refused(store):
    new_migration(store)
    with pytest.raises(StateError, match="already exists"):
        store.create("m1", "memory://other", "memory://dst", {})
    assert store.get("m1").source_uri == "memory://src"


@pytest.mark.parametrize("op", [
    lambda s: s.set_plan("nope", "{}", "h"),
    lambda s: s.set_flag("nope", "stop_requested", True),
    lambda s: s.set_verification("nope", "passed", {}),
], ids=["set_plan", "set_flag", "set_verification"])
def test_updates_on_unknown_migration_are_refused(store, op):
    with pytest.raises(UnknownMigration):
        op(store)


# -- persistence across a restart -------------------------------------------------------------

def _snapshot(store: StateStore, mid: str) -> dict:
    rec = dataclasses.asdict(store.get(mid))
    rec["rejected"] = store.rejected_count(mid)
    rec["ledger"] = [list(r) for r in store.query(
        "SELECT seq, cursor_before, cursor_after, read, written, rejected, checksum FROM batches"
        " WHERE migration_id=? ORDER BY seq", mid)]
    return rec


READER = """
    import dataclasses, json, sys
    from vmkit.state.store import StateStore
    s = StateStore(sys.argv[1])
    rec = dataclasses.asdict(s.get(sys.argv[2]))
    rec["rejected"] = s.rejected_count(sys.argv[2])
    rec["ledger"] = [list(r) for r in s.query(
        "SELECT seq, cursor_before, cursor_after, read, written, rejected, checksum FROM batches"
        " WHERE migration_id=? ORDER BY seq", sys.argv[2])]
    print(json.dumps(rec))
"""


def test_state_survives_reopen_and_is_read_by_another_process(tmp_path):
    path = tmp_path / "state.db"
    s = StateStore(path)
    new_migration(s, "m1", "in_progress")
    plan_json = json.dumps({"target": {"name": "dst", "dimension": 8}, "renames": {"a": "b"}})
    s.set_plan("m1", plan_json, "0123abcd")
    s.set_flag("m1", "created_target", True)
    lease = s.acquire_lease("m1")
    s.commit_batch("m1", lease, commit("[\"\", 10]", 10, 8), scan_done=False)
    s.commit_batch("m1", lease, commit(None, 5, 5, [], cursor_before="[\"\", 10]"), scan_done=True)
    s.release_lease("m1", lease)
    s.set_verification("m1", "passed", {"matched": 13})
    s.transition("m1", "completed")
    before = _snapshot(s, "m1")
    s.close()

    assert before["state"] == "completed" and before["batches"] == 2
    assert before["records_read"] == 15 and before["records_written"] == 13
    assert before["rejected"] == 2 and before["scan_done"] is True
    assert before["plan_json"] == plan_json and before["plan_hash"] == "0123abcd"

    again = StateStore(path)
    try:
        assert _snapshot(again, "m1") == before
    finally:
        again.close()

    out = run_py(READER, str(path), "m1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(before))


def test_committed_checkpoint_survives_kill_9(tmp_path):
    """A process SIGKILLed right after commit_batch returned (WAL not checkpointed, store not
    closed) loses nothing."""
    path = tmp_path / "state.db"
    s = StateStore(path)
    new_migration(s, "m1", "in_progress")
    s.close()
    code = """
        import os, signal, sys
        from vmkit.core.records import Rejection
        from vmkit.state.store import BatchCommit, StateStore
        s = StateStore(sys.argv[1])
        lease = s.acquire_lease("m1")
        s.commit_batch("m1", lease, BatchCommit(None, "cur-7", 7, 6, [Rejection("r", "why", "id")], "x", 0.0), False)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    out = run_py(code, str(path))
    assert out.returncode == -signal.SIGKILL
    s = StateStore(path)
    try:
        s.check_integrity()
        rec = s.get("m1")
        assert (rec.cursor, rec.batches, rec.records_read, rec.records_written) == ("cur-7", 1, 7, 6)
        assert s.rejected_count("m1") == 1
    finally:
        s.close()


def test_kill_inside_the_checkpoint_transaction_leaves_nothing_and_no_lock(tmp_path):
    path = tmp_path / "state.db"
    s = StateStore(path)
    new_migration(s, "m1", "in_progress")
    code = """
        import sys
        from vmkit.state.store import BatchCommit, StateStore
        s = StateStore(sys.argv[1])
        lease = s.acquire_lease("m1")
        s.commit_batch("m1", lease, BatchCommit(None, "cur-1", 7, 7, [], "x", 0.0), False)
        print("not reached")
    """
    env_code = "import os; os.environ['VMKIT_CRASH_AT'] = 'inside_commit:1'\n" + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", env_code, str(path)], capture_output=True,
                         text=True, check=False, timeout=120)
    assert out.returncode == -signal.SIGKILL and "not reached" not in out.stdout
    rec = s.get("m1")
    assert (rec.cursor, rec.batches, rec.records_read) == (None, 0, 0)
    # the write lock died with the process: this store can write at once
    lease = s.acquire_lease("m1")
    assert s.commit_batch("m1", lease, commit(), False) == 1
    s.close()


# -- PRAGMAs, file mode, schema version -------------------------------------------------------

def test_pragmas_on_the_stores_connection(store):
    assert store.query("PRAGMA journal_mode")[0][0].lower() == "wal"
    assert store.query("PRAGMA synchronous")[0][0] == 2  # FULL
    assert store.query("PRAGMA busy_timeout")[0][0] >= 1000


def test_pragmas_after_reopen(tmp_path):
    StateStore(tmp_path / "s.db").close()
    s = StateStore(tmp_path / "s.db")
    try:
        assert s.query("PRAGMA journal_mode")[0][0].lower() == "wal"
        assert s.query("PRAGMA synchronous")[0][0] == 2
    finally:
        s.close()


def test_file_mode_is_0600(tmp_path):
    old = os.umask(0o022)
    try:
        s = StateStore(tmp_path / "sub" / "state.db")
    finally:
        os.umask(old)
    new_migration(s)  # WAL and shm exist now
    try:
        for suffix in ("", "-wal", "-shm"):
            p = tmp_path / "sub" / f"state.db{suffix}"
            if suffix == "" or p.exists():
                assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    finally:
        s.close()


def test_schema_version_row(store):
    assert store.query("SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "state.db"
    s = StateStore(path)
    new_migration(s)
    s.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match=f"schema version {SCHEMA_VERSION + 1}"):
        StateStore(path)
    db = sqlite3.connect(path)  # refused, not migrated or reset
    try:
        assert db.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION + 1),)]
        assert db.execute("SELECT id FROM migrations").fetchall() == [("m1",)]
    finally:
        db.close()


def test_default_path_comes_from_vmkit_state(tmp_path, monkeypatch):
    monkeypatch.setenv("VMKIT_STATE", str(tmp_path / "env" / "x.db"))
    s = StateStore()
    try:
        assert s.path == tmp_path / "env" / "x.db" and s.path.exists()
    finally:
        s.close()


# -- corrupt and foreign files ---------------------------------------------------------------

def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(np.random.default_rng(3).bytes(16384))
    with pytest.raises(StateCorrupt, match="not a usable vmkit state file"):
        StateStore(path)


def _filled_state_file(path) -> bytes:
    s = StateStore(path)
    for k in range(4):
        mid = new_migration(s, f"m{k}", "in_progress")
        s.set_plan(mid, json.dumps({"pad": "p" * 3000}), "h")
        lease = s.acquire_lease(mid)
        for b in range(25):
            s.commit_batch(mid, lease, commit(f"c{b}", rejections=[Rejection(f"r{b}", "why " * 10, "vector")]), False)
    s.close()
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0
    return path.read_bytes()


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.9])
def test_truncated_file_is_refused_never_silently_fresh(tmp_path, fraction):
    data = _filled_state_file(tmp_path / "full.db")
    assert len(data) > 8 * 4096
    path = tmp_path / "state.db"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StateCorrupt):
        s = StateStore(path)
        try:
            s.check_integrity()
        finally:
            s.close()


def test_integrity_check_passes_on_a_good_file(tmp_path):
    _filled_state_file(tmp_path / "full.db")
    s = StateStore(tmp_path / "full.db")
    try:
        s.check_integrity()
        assert len(s.migrations()) == 4
    finally:
        s.close()


def test_unrelated_db_with_migrations_rows_is_refused(tmp_path):
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE migrations (version INTEGER, name TEXT);"
                     "INSERT INTO migrations VALUES (1, '0001_initial');")
    db.close()
    with pytest.raises(StateCorrupt):
        StateStore(path)
    db = sqlite3.connect(path)  # nothing of vmkit's was left in it
    try:
        tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"migrations"}
    finally:
        db.close()


@pytest.mark.parametrize("setup", [
    "CREATE TABLE migrations (version INTEGER, name TEXT)",
    "CREATE TABLE users (id INTEGER, name TEXT); INSERT INTO users VALUES (1, 'ann')",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); CREATE TABLE users (id INTEGER)",
    "CREATE TABLE meta (k TEXT, v TEXT); INSERT INTO meta VALUES ('a', 'b')",
], ids=["empty-migrations-table", "other-tables", "meta-without-version", "foreign-meta"])
def test_unrelated_db_without_vmkit_meta_is_refused(tmp_path, setup):
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.executescript(setup)
    db.close()
    before = _tables(path)
    with pytest.raises(StateCorrupt):
        StateStore(path).close()
    assert _tables(path) == before  # vmkit added nothing to someone else's database


def test_an_empty_file_is_refused_not_taken_for_a_new_store(tmp_path):
    """vmkit builds a new store beside its path and links it into place, so it never leaves
    an empty file: one is a truncated store, and starting afresh in it would re-copy from zero."""
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    with pytest.raises(StateCorrupt, match="empty"):
        StateStore(path)
    assert path.stat().st_size == 0 and sorted(os.listdir(tmp_path)) == ["state.db"]


def test_a_new_store_leaves_nothing_beside_it(tmp_path):
    s = StateStore(tmp_path / "state.db")
    s.close()
    assert [n for n in os.listdir(tmp_path) if not n.startswith("state.db")] == []
    again = StateStore(tmp_path / "state.db")  # an existing store is opened, not replaced
    assert again.migrations() == []
    again.close()


def test_stores_created_at_once_on_one_path_are_one_store(tmp_path):
    """Racing creators never see each other's half-made file (nor an empty one)."""
    path, n = tmp_path / "state.db", 8
    ready = threading.Barrier(n)
    made: list[StateStore] = []
    errors: list[BaseException] = []

    def make(i: int) -> None:
        ready.wait()
        try:
            made.append(StateStore(path))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == n
    made[0].create("m", "memory://a", "memory://b", {})
    assert all(s.exists("m") for s in made)
    for s in made:
        s.close()


def _tables(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


# -- commit_batch ----------------------------------------------------------------------------

def test_commit_batch_advances_cursor_counters_ledger_and_rejections(store):
    mid = new_migration(store, state="in_progress")
    lease = store.acquire_lease(mid)
    assert store.commit_batch(mid, lease, commit("c1", 10, 8), scan_done=False) == 1
    assert store.commit_batch(mid, lease, commit("c2", 10, 9, [Rejection("z", "why", "metadata.a")],
                                                 cursor_before="c1"), scan_done=True) == 2
    rec = store.get(mid)
    assert (rec.cursor, rec.batches, rec.records_read, rec.records_written, rec.scan_done) == \
        ("c2", 2, 20, 17, True)
    assert store.rejected_count(mid) == 3
    rows = store.query("SELECT namespace, record_id, id_is_int, reason, field, seq FROM rejections"
                       " WHERE migration_id=? ORDER BY rowid", mid)
    assert rows == [
        ("ns", "bad-1", 0, "vector has NaN or Inf components", "vector", 1),
        ("", "42", 1, "duplicate id in batch (last kept)", "id", 1),
        ("", "z", 0, "why", "metadata.a", 2),
    ]
    ledger = store.query("SELECT seq, cursor_before, cursor_after, read, written, rejected"
                         " FROM batches WHERE migration_id=? ORDER BY seq", mid)
    assert ledger == [(1, None, "c1", 10, 8, 2), (2, "c1", "c2", 10, 9, 1)]


def test_commit_batch_is_one_transaction(store):
    """A failure half-way through (after the ledger insert) leaves no trace at all."""
    mid = new_migration(store, state="in_progress")
    lease = store.acquire_lease(mid)
    store.commit_batch(mid, lease, commit("c1"), False)
    before = _snapshot(store, mid)
    broken = commit("c2", rejections=[Rejection("ok", "fine", "id"), Rejection("x", None, "id")])  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        store.commit_batch(mid, lease, broken, True)
    assert _snapshot(store, mid) == before
    assert store.get(mid).cursor == "c1"
    # and the store is still usable
    assert store.commit_batch(mid, lease, commit("c2"), True) == 2


def test_commit_with_stale_lease_changes_nothing(store):
    mid = new_migration(store, state="in_progress")
    lease = store.acquire_lease(mid)
    store.commit_batch(mid, lease, commit("c1"), False)
    before = _snapshot(store, mid)
    with pytest.raises(LeaseHeld, match="taken over"):
        store.commit_batch(mid, "not-the-lease", commit("c2"), True)
    assert _snapshot(store, mid) == before
    store.release_lease(mid, lease)
    before = _snapshot(store, mid)
    assert before["lease_owner"] is None
    with pytest.raises(LeaseHeld):
        store.commit_batch(mid, lease, commit("c2"), True)  # released: no longer ours
    assert _snapshot(store, mid) == before
    assert store.get(mid).cursor == "c1" and store.rejected_count(mid) == 2


@pytest.mark.parametrize("state", ["not_started", "completed", "rolled_back"])
def test_commit_outside_in_progress_is_refused(store, state):
    mid = new_migration(store, state=state)
    lease = store.acquire_lease(mid)
    before = _snapshot(store, mid)
    with pytest.raises(IllegalTransition, match=state):
        store.commit_batch(mid, lease, commit(), False)
    assert _snapshot(store, mid) == before


# -- the lease -------------------------------------------------------------------------------

def test_same_process_reacquire_after_release(store):
    mid = new_migration(store, state="in_progress")
    t1 = store.acquire_lease(mid)
    with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
        store.acquire_lease(mid)  # still held by this very process
    store.release_lease(mid, t1)
    t2 = store.acquire_lease(mid)
    assert t2 != t1
    assert store.get(mid).lease_owner == t2 and store.get(mid).lease_pid == os.getpid()


def test_own_pid_with_a_token_no_runner_here_holds_is_taken_over(store):
    """What a state backup restored in the process that made it looks like: the lease names
    this pid, but the runner that held it has released it (its token is unknown here)."""
    mid = new_migration(store, state="in_progress")
    old = store.acquire_lease(mid)
    store.release_lease(mid, old)
    store.query("UPDATE migrations SET lease_owner=?, lease_pid=?, lease_host=?, lease_at=? WHERE id=?",
                old, os.getpid(), socket.gethostname(), time.time(), mid)  # as the backup holds it
    new = store.acquire_lease(mid)
    assert new != old and store.get(mid).lease_owner == new
    events = store.query("SELECT detail FROM events WHERE migration_id=? AND event='lease taken over'", mid)
    assert events == [(f"from dead pid {os.getpid()} on {socket.gethostname()}",)]


def test_release_with_a_foreign_token_does_not_release(store):
    mid = new_migration(store, state="in_progress")
    t1 = store.acquire_lease(mid)
    store.release_lease(mid, "someone-else")
    assert store.get(mid).lease_owner == t1
    with pytest.raises(LeaseHeld):
        store.acquire_lease(mid)


HOLDER = """
    import sys, time
    from vmkit.state.store import StateStore
    s = StateStore(sys.argv[1])
    s.acquire_lease(sys.argv[2])
    time.sleep(600)
"""


def test_lease_held_by_live_process_then_taken_over_after_kill(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    mid = new_migration(store, "m1", "in_progress")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(path), mid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while store.get(mid).lease_pid != proc.pid:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the holder never took the lease"
            time.sleep(0.05)
        their_token = store.get(mid).lease_owner
        assert their_token

        with pytest.raises(LeaseHeld) as info:
            store.acquire_lease(mid)
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg
        assert f"vmkit migrate stop --id {mid}" in msg
        assert store.get(mid).lease_owner == their_token  # refused means unchanged
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()

    token = store.acquire_lease(mid)
    rec = store.get(mid)
    assert rec.lease_owner == token != their_token and rec.lease_pid == os.getpid()
    events = store.query("SELECT event, detail FROM events WHERE migration_id=?", mid)
    taken = [d for e, d in events if e == "lease taken over"]
    assert len(taken) == 1 and str(proc.pid) in taken[0]
    # the dead runner's token can no longer checkpoint
    with pytest.raises(LeaseHeld):
        store.commit_batch(mid, their_token, commit(), False)
    assert store.commit_batch(mid, token, commit(), False) == 1
    store.close()


def test_lease_from_another_host_expires_only_after_ttl(store):
    from vmkit.state.lease import LEASE_TTL_S

    mid = new_migration(store, state="in_progress")
    now = time.time()

    def write(sql: str, *args) -> None:
        db = sqlite3.connect(store.path, timeout=30)
        try:
            db.execute(sql, args)
            db.commit()
        finally:
            db.close()

    write("UPDATE migrations SET lease_owner='t', lease_pid=1, lease_host='elsewhere', lease_at=?"
          " WHERE id=?", now, mid)
    with pytest.raises(LeaseHeld, match="on elsewhere"):
        store.acquire_lease(mid)
    write("UPDATE migrations SET lease_at=? WHERE id=?", now - LEASE_TTL_S - 1, mid)
    token = store.acquire_lease(mid)
    assert store.get(mid).lease_owner == token and store.get(mid).lease_host != "elsewhere"


# -- no secrets on disk ----------------------------------------------------------------------

CANARY = "canary-SECRET-123"


def test_no_env_secret_in_state_file(tmp_path, monkeypatch):
    from vmkit import Migration, TargetSpec, connect
    from vmkit.core.records import RecordBatch

    monkeypatch.setenv("QDRANT_API_KEY", CANARY)
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(5)
    src.upsert(RecordBatch(list(range(60)), rng.standard_normal((60, 8)),
                           [{"i": i, "note": "plain"} for i in range(60)]))
    target = f"qdrant://{tmp_path}/q?collection=c"
    state = tmp_path / "state.db"
    m = Migration.create("memory://src", target, migration_id="sec", state=state, batch_size=25)
    status = m.run()
    assert status.state == "completed" and status.records_written == 60

    def raw() -> bytes:
        out = b""
        for suffix in ("", "-wal", "-shm"):
            p = tmp_path / f"state.db{suffix}"
            if p.exists():
                out += p.read_bytes()
        return out

    while_open = raw()
    m.store.close()
    after_close = raw()
    for data in (while_open, after_close):
        assert str(tmp_path / "q").encode() in data  # the search does see what is stored
        assert CANARY.encode() not in data
        assert b"SECRET" not in data
