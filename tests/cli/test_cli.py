"""The operator CLI, run for real (``python -m vmkit``): every expected failure is exactly one
``error: ...`` line and exit code 2, never a traceback; the happy path completes, verifies and
is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from vmkit import connect
from vmkit.state.store import StateStore

SECRET = "hunter2pass"


def cli(state: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMKIT_")}
    env["VMKIT_STATE"] = str(state)
    out = subprocess.run([sys.executable, "-m", "vmkit", *args], capture_output=True, text=True,
                         check=False, env=env, cwd=cwd or state.parent, timeout=300)
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    return out


def one_error_line(out: subprocess.CompletedProcess) -> str:
    """Exit 2, nothing on stdout, and stderr is one line starting with 'error: '."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert out.stdout.strip() == ""
    return lines[0]


def snapshot(state: Path, mid: str) -> dict:
    s = StateStore(state)
    try:
        rec = s.get(mid)
        ledger = s.query("SELECT seq, cursor_after, read, written, rejected FROM batches"
                         " WHERE migration_id=? ORDER BY seq", mid)
        return {"state": rec.state, "batches": rec.batches, "read": rec.records_read,
                "written": rec.records_written, "cursor": rec.cursor, "scan_done": rec.scan_done,
                "plan_hash": rec.plan_hash, "stop": rec.stop_requested,
                "rejected": s.rejected_count(mid), "ledger": ledger}
    finally:
        s.close()


def target_count(uri: str) -> int:
    with connect(uri) as conn:
        return conn.count()


def qdrant_source(root: Path, n: int, dim: int = 16) -> str:
    from vmkit.connectors.datasets import fill

    uri = f"qdrant://{root}/src?collection=docs"
    fill(uri, n, dim)
    return uri


# -- expected failures -----------------------------------------------------------------------

BAD_URIS = {
    "no-scheme": "nope",
    "unknown-scheme": "unknown://x",
    "credentials": f"qdrant://user:{SECRET}@host:6333/c",
}
BAD_URI_CASES = [(kind, cmd) for kind in BAD_URIS for cmd in ("start-source", "plan-target")]

UNKNOWN_ID_CASES = {
    "resume": ["migrate", "resume", "--id", "ghost", "--no-progress"],
    "stop": ["migrate", "stop", "--id", "ghost"],
    "rollback": ["migrate", "rollback", "--id", "ghost"],
    "status": ["status", "--id", "ghost"],
    "validate": ["validate", "--id", "ghost", "--full"],
    "rejections": ["rejections", "--id", "ghost"],
}


def _bad_uri_args(kind: str, command: str) -> list[str]:
    bad, good = BAD_URIS[kind], "memory://ok"
    if command == "start-source":
        return ["migrate", "start", "--source", bad, "--target", good, "--id", "b1", "--no-progress"]
    return ["plan", "--source", good, "--target", bad]


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory):
    """Every expected-failure case, each with its own state file, run a few at a time (they
    are independent and each costs a Python start-up)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs: dict[tuple[str, ...], tuple[Path, list[str]]] = {}
    for kind, command in BAD_URI_CASES:
        jobs[("uri", kind, command)] = (tmp_path_factory.mktemp("uri") / "state.db", _bad_uri_args(kind, command))
    for name, args in UNKNOWN_ID_CASES.items():
        jobs[("id", name)] = (tmp_path_factory.mktemp("id") / "state.db", args)
    corrupt = tmp_path_factory.mktemp("corrupt") / "state.db"
    corrupt.write_bytes(b"not sqlite at all " * 500)
    jobs[("corrupt",)] = (corrupt, ["status"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(cli, state, *args) for key, (state, args) in jobs.items()}
        return {key: (jobs[key][0], f.result()) for key, f in futures.items()}


@pytest.mark.parametrize("kind,command", BAD_URI_CASES)
def test_bad_uri_is_one_error_line(error_runs, kind, command):
    state, out = error_runs[("uri", kind, command)]
    line = one_error_line(out)
    if kind == "unknown-scheme":
        assert "unknown connector 'unknown://'" in line
    if kind == "no-scheme":
        assert "not a connector URI" in line
    if kind == "credentials":
        assert "credentials" in line and "environment" in line
    assert "pass" not in (out.stdout + out.stderr).lower() and SECRET not in out.stdout + out.stderr
    if state.exists():  # nothing was registered
        s = StateStore(state)
        try:
            assert s.migrations() == []
        finally:
            s.close()


@pytest.mark.parametrize("name", list(UNKNOWN_ID_CASES))
def test_unknown_id_is_one_error_line(error_runs, name):
    _, out = error_runs[("id", name)]
    line = one_error_line(out)
    assert "'ghost'" in line and "no migration" in line


def test_corrupt_state_file_is_one_error_line(error_runs):
    _, out = error_runs[("corrupt",)]
    line = one_error_line(out)
    assert "not a usable vmkit state file" in line


# -- the happy path --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = qdrant_source(root, 600)
    dst = f"qdrant://{root}/dst?collection=docs"
    state = root / "state.db"
    start = ["migrate", "start", "--source", src, "--target", dst, "--id", "m1",
             "--batch-size", "100", "--no-progress"]
    out = cli(state, *start)
    return {"root": root, "src": src, "dst": dst, "state": state, "start": start, "out": out}


def test_start_completes_and_status_shows_it(migrated):
    out = migrated["out"]
    assert out.returncode == 0, out.stderr
    assert f"plan {migrated['src']} -> {migrated['dst']}" in out.stdout
    assert "migration m1: completed" in out.stdout
    status = cli(migrated["state"], "status", "--id", "m1")
    assert status.returncode == 0
    assert "migration m1: completed" in status.stdout
    assert "full verification: passed (600 matched, 0 missing, 0 extra, 0 mismatched)" in status.stdout
    assert "batches 6; read 600" in status.stdout and "written 600; rejected 0" in status.stdout
    snap = snapshot(migrated["state"], "m1")
    assert (snap["state"], snap["batches"], snap["read"], snap["written"], snap["scan_done"]) == \
        ("completed", 6, 600, 600, True)
    assert target_count(migrated["dst"]) == 600


def test_start_again_changes_nothing(migrated):
    before = snapshot(migrated["state"], "m1")
    count = target_count(migrated["dst"])
    out = cli(migrated["state"], *migrated["start"])
    assert out.returncode == 0, out.stderr
    assert "migration m1: completed" in out.stdout
    assert "plan " not in out.stdout  # not planned again
    assert snapshot(migrated["state"], "m1") == before
    assert target_count(migrated["dst"]) == count == 600


def test_start_same_id_other_uris_is_refused(migrated):
    args = list(migrated["start"])
    args[args.index("--target") + 1] = f"qdrant://{migrated['root']}/elsewhere?collection=docs"
    before = snapshot(migrated["state"], "m1")
    line = one_error_line(cli(migrated["state"], *args))
    assert "m1" in line and "other URIs" in line
    assert snapshot(migrated["state"], "m1") == before


def test_start_of_an_unknown_id_into_a_filled_target_is_refused(migrated):
    """The state file that ran m1 is lost (or an old copy): starting m1 again in a fresh store
    would re-copy all 600 records and forget that vmkit created the target."""
    lost = migrated["root"] / "lost.db"
    line = one_error_line(cli(lost, *migrated["start"]))
    assert "already holds 600 records" in line and "'m1'" in line and "--into-nonempty-target" in line
    store = StateStore(lost)
    try:
        assert store.migrations() == []  # nothing registered
    finally:
        store.close()
    out = cli(lost, *migrated["start"], "--into-nonempty-target", "--max-batches", "1")
    assert out.returncode == 0, out.stderr  # asked for: a new copy into the same target
    assert snapshot(lost, "m1")["batches"] == 1 and target_count(migrated["dst"]) == 600


def test_validate_full_passes(migrated):
    out = cli(migrated["state"], "validate", "--id", "m1", "--full")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("verification PASSED: 600 matched")


def test_stop_on_completed_is_a_noop_line(migrated):
    before = snapshot(migrated["state"], "m1")
    out = cli(migrated["state"], "migrate", "stop", "--id", "m1")
    assert out.returncode == 0
    assert out.stdout.strip().splitlines() == ["migration m1 is completed; nothing to stop"]
    assert snapshot(migrated["state"], "m1") == before


def test_rollback_of_completed_is_one_error_line(migrated):
    before = snapshot(migrated["state"], "m1")
    line = one_error_line(cli(migrated["state"], "migrate", "rollback", "--id", "m1"))
    assert "'m1'" in line and "completed" in line and "rolled_back" in line
    assert snapshot(migrated["state"], "m1") == before
    assert target_count(migrated["dst"]) == 600


def test_rejections_prints_the_header(migrated):
    out = cli(migrated["state"], "rejections", "--id", "m1")
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["namespace\tid\tfield\treason"]


def test_plan_prints_the_plan(migrated):
    out = cli(migrated["state"], "plan", "--source", migrated["src"], "--target", migrated["dst"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"plan {migrated['src']} -> {migrated['dst']}"
    assert "target: docs dim=16 metric=cosine" in out.stdout
    assert "records: 600" in out.stdout


def test_status_without_id_lists_migrations(migrated):
    out = cli(migrated["state"], "status")
    assert out.returncode == 0
    rows = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == 1
    assert rows[0].split()[:3] == ["m1", "completed", "600"]
    assert migrated["src"] in rows[0] and migrated["dst"] in rows[0]


def test_status_without_id_on_empty_store(tmp_path):
    out = cli(tmp_path / "state.db", "status")
    assert out.returncode == 0 and out.stdout.startswith("no migrations in")


# -- verification failure (last user of the shared migration; it puts the records back) ----

def test_validate_full_reports_a_deleted_record(migrated):
    state, dst = migrated["state"], migrated["dst"]
    gone = [42, str(uuid.uuid5(uuid.NAMESPACE_OID, "vmkit-demo:7:43"))]  # vmkit.connectors.datasets ids
    with connect(dst) as conn:
        saved = conn.fetch(gone)
        assert len(saved) == 2
        conn.delete(gone)
        assert conn.count() == 598
    try:
        out = cli(state, "validate", "--id", "m1", "--full")
        assert out.returncode == 1
        lines = out.stdout.splitlines()
        assert lines[0].startswith("verification FAILED") and "2 missing" in lines[0]
        missing = [line.split(None, 1)[1] for line in lines[1:] if line.split()[0] == "missing"]
        assert missing == ["42", repr(gone[1])]
        status = cli(state, "status", "--id", "m1")
        assert "full verification: failed" in status.stdout and "2 missing" in status.stdout
    finally:
        with connect(dst) as conn:
            conn.upsert(saved)
            assert conn.count() == 600


# -- an unfinished migration: stop, rollback, resume -----------------------------------------

@pytest.fixture(scope="module")
def partial(migrated):
    root, src = migrated["root"], migrated["src"]
    dst = f"qdrant://{root}/dst-partial?collection=docs"
    state = root / "partial.db"
    out = cli(state, "migrate", "start", "--source", src, "--target", dst, "--id", "p1",
              "--batch-size", "100", "--max-batches", "1", "--no-progress")
    return {"root": root, "state": state, "dst": dst, "out": out}


def test_partial_stop_rollback_resume(partial):
    state = partial["state"]
    out = partial["out"]
    assert out.returncode == 0, out.stderr
    assert "migration p1: in_progress" in out.stdout
    assert "resume with: vmkit migrate resume --id p1" in out.stdout
    snap = snapshot(state, "p1")
    assert (snap["state"], snap["batches"], snap["read"]) == ("in_progress", 1, 100)

    out = cli(state, "migrate", "stop", "--id", "p1")
    assert out.returncode == 0 and out.stdout.startswith("stop requested for p1")
    assert snapshot(state, "p1")["stop"] is True

    out = cli(state, "migrate", "rollback", "--id", "p1")
    assert out.returncode == 0, out.stderr
    assert "migration p1: rolled_back" in out.stdout
    before = snapshot(state, "p1")
    assert before["state"] == "rolled_back"

    # resuming a rolled-back migration is a no-op, said in one line
    out = cli(state, "migrate", "resume", "--id", "p1", "--no-progress")
    assert out.returncode == 0
    said = [line for line in (out.stdout + out.stderr).splitlines() if "nothing to do" in line]
    assert len(said) == 1 and "p1 is rolled_back" in said[0]
    assert "error" not in out.stderr.lower()
    assert snapshot(state, "p1") == before
    assert target_count(partial["dst"]) == 100

    # rollback again is safe (idempotent), and start with the same id does not restart it
    out = cli(state, "migrate", "rollback", "--id", "p1")
    assert out.returncode == 0 and "rolled_back" in out.stdout
    assert snapshot(state, "p1") == before


def test_status_printed_after_a_stop_is_not_running(partial):
    assert partial["out"].returncode == 0
    assert "migration p1: in_progress" in partial["out"].stdout
    assert "running as" not in partial["out"].stdout


def test_plan_writes_nothing(migrated, tmp_path):
    src = migrated["src"]
    target_dir = tmp_path / "never"
    out = cli(tmp_path / "state.db", "plan", "--source", src, "--target",
              f"qdrant://{target_dir}?collection=docs")
    assert out.returncode == 0, out.stderr
    assert not target_dir.exists()
