"""One runner per migration, with real processes: a second CLI on a running migration gets a
one-line error naming the live runner's pid (resume, start and rollback alike), and once the
runner is SIGKILLed its lease is taken over; two processes racing for the dead runner's lease
never both write. (The live runner is frozen with SIGSTOP while the second one tries, so the
test never races with it finishing.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from resilience.helpers import ACK, cli, contents, kill9, max_acked, wait_for_ack

from vmkit import connect
from vmkit.state.store import StateStore

pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

N = 4000
SOURCE = f"synthetic://lease?n={N}&dim=8&seed=21&metric=dot"


@pytest.fixture
def work():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="vmkit-lease-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def expected() -> dict:
    with connect(SOURCE) as s:
        return {rid: (np.asarray(v, np.float32).tobytes(), meta) for rid, v, meta, _ in s.scan(None, N)[0].rows()}


def committed(state: Path, mid: str) -> int:
    store = StateStore(state)
    try:
        return store.get(mid).batches
    finally:
        store.close()


def one_line_error(proc: subprocess.Popen[bytes]) -> str:
    out = proc.communicate(timeout=120)[0].decode().strip().splitlines()
    assert proc.returncode == 2 and len(out) == 1 and out[0].startswith("error: "), out
    return out[0]


def freeze_outside_a_transaction(proc: subprocess.Popen[bytes], state: Path) -> None:
    """SIGSTOP the runner at a moment it holds no SQLite write lock (else the second runner
    would wait out the busy timeout instead of reading the lease)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(state, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # stopped inside a commit: let it finish it
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("never found the runner outside a transaction")


def test_second_runner_is_refused_then_the_dead_runners_lease_is_taken_over(work):
    target = f"qdrant://{work}/t?collection=c"
    state, log = work / "state.db", work / "first.log"
    first = cli(["migrate", "start", "--source", SOURCE, "--target", target, "--id", "L",
                 "--batch-size", "20", "--no-progress"], state, log)
    try:
        assert wait_for_ack(first, log, above=2)
        # Freeze it: a live runner stuck in a long request, holding the lease, for as long as
        # the checks below take (no race with it finishing).
        freeze_outside_a_transaction(first, state)
        for args in (["migrate", "resume", "--id", "L", "--no-progress"],
                     ["migrate", "start", "--source", SOURCE, "--target", target, "--id", "L",
                      "--batch-size", "20", "--no-progress"],
                     ["migrate", "rollback", "--id", "L"]):
            second = cli(args, state)
            line = one_line_error(second)
            assert f"already being run by pid {first.pid} " in line, line
            assert first.poll() is None
        status = cli(["status", "--id", "L"], state).communicate(timeout=120)[0].decode()
        assert f"running as pid {first.pid} on" in status
    finally:
        assert kill9(first) == -9
    at_kill = committed(state, "L")
    assert StateStore(state).get("L").lease_pid == first.pid  # a kill leaves the lease behind
    assert max_acked(log) - at_kill <= 1

    log2 = work / "second.log"
    resumed = cli(["migrate", "resume", "--id", "L", "--no-progress"], state, log2)
    out = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0 and "full verification: passed" in out, out
    text = log2.read_text()
    first_ack = min(int(m.group(1)) for m in ACK.finditer(text))
    assert first_ack == at_kill + 1  # resumed right after the last commit
    store = StateStore(state)
    events = [d for (d,) in store.query("SELECT detail FROM events WHERE event='lease taken over'")]
    assert events == [f"from dead pid {first.pid} on {os.uname().nodename}"]
    rec = store.get("L")
    assert rec.state == "completed" and rec.lease_owner is None and rec.records_read == N
    store.close()
    assert contents(target) == expected()


def test_two_processes_racing_for_a_dead_runners_lease(work):
    target = f"qdrant://{work}/t?collection=c"
    state = work / "state.db"
    killed = cli(["migrate", "start", "--source", SOURCE, "--target", target, "--id", "R",
                  "--batch-size", "200", "--no-progress"], state, work / "killed.log",
                 env={"VMKIT_CRASH_AT": "after_ack:4"})
    assert killed.wait(timeout=300) == -9
    at_kill = committed(state, "R")
    logs = [work / "a.log", work / "b.log"]
    racers = [cli(["migrate", "resume", "--id", "R", "--no-progress"], state, lg) for lg in logs]
    outs = [p.communicate(timeout=300)[0].decode() for p in racers]
    codes = [p.returncode for p in racers]
    writers = [i for i, lg in enumerate(logs) if lg.exists() and ACK.search(lg.read_text())]
    assert len(writers) == 1, (codes, outs)  # never two runners writing
    w = writers[0]
    assert codes[w] == 0 and "full verification: passed" in outs[w], outs[w]
    other = 1 - w
    if codes[other] == 2:  # refused while the winner ran ...
        assert re.search(rf"already being run by pid {racers[w].pid} ", outs[other]), outs[other]
    else:  # ... or it came after the winner had finished: nothing left to do
        assert codes[other] == 0 and "completed" in outs[other], outs[other]
    first_ack = min(int(m.group(1)) for m in ACK.finditer(logs[w].read_text()))
    assert first_ack == at_kill + 1
    assert contents(target) == expected()


@pytest.mark.slow
def test_a_held_write_lock_is_not_reported_as_corruption(work):
    from vmkit.state.store import StateStore as Store

    state = work / "state.db"
    store = Store(state)
    store.create("W", "memory://a", "memory://b", {})
    store.close()
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a runner frozen inside commit_batch holds
    try:
        line = one_line_error(cli(["status", "--id", "W"], state))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in line and "not a usable vmkit state file" not in line, line
