"""SIGKILL a running `vmkit migrate` at seeded random moments and at the dangerous points;
resume each time. The target must end equal to the source (read independently of vmkit's own
verifier), with at most one replayed batch per kill and an intact state file."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from resilience.helpers import cli, contents, kill9, max_acked, sleep_into_next_batch, wait_for_ack

from vmkit.connectors.datasets import fill
from vmkit.state.store import StateStore

RECORDS, DIM, BATCH = 3000, 32, 100


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    uri = f"qdrant://{tmp_path_factory.mktemp('src')}/q?collection=docs"
    fill(uri, RECORDS, DIM, metric="dot")
    return uri


def committed(state: Path, mid: str) -> int:
    store = StateStore(state)
    try:
        store.check_integrity()
        return store.get(mid).batches if store.exists(mid) else 0
    finally:
        store.close()


def finish(proc: subprocess.Popen[bytes]) -> str:
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    return out


def assert_equal(source: str, target: str, state: Path, mid: str) -> None:
    assert contents(target) == contents(source)
    store = StateStore(state)
    status = store.get(mid)
    assert status.state == "completed" and status.verification == "passed"
    assert status.records_read == RECORDS and status.records_written == RECORDS
    store.close()


def test_sigkill_at_seeded_random_moments(source, tmp_path):
    rng = random.Random(20261125)
    target = f"qdrant://{tmp_path}/dst?collection=docs"
    state, mid = tmp_path / "state.db", "crash"
    start = ["migrate", "start", "--source", source, "--target", target, "--id", mid,
             "--batch-size", str(BATCH), "--no-progress"]
    kills, replays, logs = 0, [], []
    while kills < 12:
        log = tmp_path / f"run{kills}.log"
        logs.append(log)
        proc = cli(start, state, log)
        before = committed(state, mid)
        # A random number of batches in, then a random moment inside the next one (write,
        # commit, validation): paced by batches, not seconds, so a faster target still dies
        # mid-run a dozen times.
        if not wait_for_ack(proc, log, above=before + rng.randrange(2)):
            break  # finished before we could kill it
        sleep_into_next_batch(rng, *logs)
        assert kill9(proc) == -9 or proc.returncode == 0
        if proc.returncode == 0:
            break
        kills += 1
        replays.append(max_acked(log) - committed(state, mid))
        assert committed(state, mid) >= before  # never rewinds
    assert kills >= 10, "the migration finished before ten kills landed"
    assert max(replays) <= 1, replays
    finish(cli(["migrate", "resume", "--id", mid, "--no-progress"], state, tmp_path / "last.log"))
    assert_equal(source, target, state, mid)


@pytest.mark.parametrize("point", ["after_ack:3", "inside_commit:2", "last_batch:1", "during_validation:1"])
def test_sigkill_at_dangerous_points(source, tmp_path, point):
    target = f"qdrant://{tmp_path}/dst?collection=docs"
    state, mid, log = tmp_path / "state.db", "danger", tmp_path / "run.log"
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", mid,
                "--batch-size", "500", "--sample-rate", "0.5", "--no-progress"], state, log,
               env={"VMKIT_CRASH_AT": point})
    assert proc.wait(timeout=300) == -9
    replayed = max_acked(log) - committed(state, mid)
    assert 0 <= replayed <= 1
    if point.startswith("after_ack") or point.startswith("last_batch") or point.startswith("inside"):
        assert replayed == 1  # acknowledged, never committed: exactly the batch in flight
    finish(cli(["migrate", "resume", "--id", mid, "--no-progress"], state, tmp_path / "resume.log"))
    assert_equal(source, target, state, mid)


def test_sigkill_during_rollback_then_rollback_again(source, tmp_path):
    target = f"qdrant://{tmp_path}/dst?collection=docs"
    state, mid = tmp_path / "state.db", "rb"
    finish(cli(["migrate", "start", "--source", source, "--target", target, "--id", mid,
                "--max-batches", "2", "--no-progress"], state))
    proc = cli(["migrate", "rollback", "--id", mid, "--drop-target"], state,
               env={"VMKIT_CRASH_AT": "during_rollback:1"})
    assert proc.wait(timeout=120) == -9
    assert StateStore(state).get(mid).state == "rolled_back"
    assert contents(target)  # killed before the drop
    out = finish(cli(["migrate", "rollback", "--id", mid, "--drop-target"], state))
    assert "rolled_back" in out
    from vmkit.connectors import connect

    with connect(target) as conn:
        assert conn.describe() is None


def test_sigterm_finishes_the_batch_and_exits_cleanly(source, tmp_path):
    target = f"qdrant://{tmp_path}/dst?collection=docs"
    state, mid, log = tmp_path / "state.db", "term", tmp_path / "run.log"
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", mid,
                "--batch-size", str(BATCH), "--no-progress"], state, log)
    assert wait_for_ack(proc, log, above=1)
    proc.terminate()
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    assert "resume with: vmkit migrate resume --id term" in out
    assert max_acked(log) == committed(state, mid)  # nothing acknowledged left uncommitted
    finish(cli(["migrate", "resume", "--id", mid, "--no-progress"], state))
    assert_equal(source, target, state, mid)


def test_sigkill_while_planning_then_resume_completes(source, tmp_path):
    """`migrate start` registers the migration before planning (the slow part): killed while
    planning, it is there as `not_started (planning)` and `migrate resume` plans and runs it."""
    target = f"qdrant://{tmp_path}/dst?collection=docs"
    state, mid = tmp_path / "state.db", "planning"
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", mid,
                "--batch-size", "500", "--no-progress"], state, env={"VMKIT_CRASH_AT": "planning"})
    assert proc.wait(timeout=120) == -9
    store = StateStore(state)
    rec = store.get(mid)
    assert rec.state == "not_started" and rec.plan_json is None
    store.close()
    status = finish(cli(["status", "--id", mid], state))
    assert f"migration {mid}: not_started (planning)" in status
    finish(cli(["migrate", "resume", "--id", mid, "--no-progress"], state))
    assert_equal(source, target, state, mid)
