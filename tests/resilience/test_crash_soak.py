"""Long crash runs (``make test-slow``): SIGKILL at 20 seeded random moments, and a crash loop
on a 100,000-record migration (kill with probability 0.3 every second until it completes).

Source: ``synthetic://`` (deterministic records generated on demand, nothing on disk); target:
the embedded Qdrant engine in a directory (on tmpfs when there is one), dimension 8, dot
product, so vectors compare exactly. After the last run the target is read back with plain
scans and compared with the source record by record (not with vmkit's own verifier), the state
file passes ``PRAGMA integrity_check``, and each kill replayed at most one batch: the highest
batch a killed runner's log says was acknowledged minus the batches committed when it died.

Figures are printed (run with ``-s``) and kept as test properties.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from resilience.helpers import (
    cli,
    committed,
    contents,
    kill9,
    max_acked,
    sleep_into_next_batch,
    wait_for_ack,
)

from vmkit import connect
from vmkit.state.store import StateStore

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")]


@pytest.fixture
def work():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="vmkit-soak-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def source_records(uri: str) -> dict:
    out = {}
    with connect(uri) as s:
        cursor = None
        while True:
            batch, cursor = s.scan(cursor, 10_000)
            for rid, v, meta, _ in batch.rows():
                out[rid] = (np.asarray(v, np.float32).tobytes(), meta)
            if cursor is None:
                return out


def check_end(source: str, target: str, state: Path, mid: str, n: int) -> dict:
    want, got = source_records(source), contents(target)
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    mismatched = [k for k in want if k in got and got[k] != want[k]]
    with sqlite3.connect(state) as c:
        integrity = c.execute("PRAGMA integrity_check").fetchall()
    c.close()
    store = StateStore(state)
    rec = store.get(mid)
    store.close()
    figures = {"missing": len(missing), "extra": len(extra), "mismatched": len(mismatched),
               "integrity": integrity[0][0], "state": rec.state, "verification": rec.verification,
               "records_read": rec.records_read}
    assert figures == {"missing": 0, "extra": 0, "mismatched": 0, "integrity": "ok",
                       "state": "completed", "verification": "passed", "records_read": n}, figures
    return figures


def test_sigkill_at_20_seeded_random_moments(work, record_property):
    n, batch = 30_000, 50
    source = f"synthetic://kills?n={n}&dim=8&seed=20&metric=dot"
    target = f"qdrant://{work}/t?collection=c"
    state, mid = work / "state.db", "kill20"
    rng = random.Random(20261126)
    start = ["migrate", "start", "--source", source, "--target", target, "--id", mid,
             "--batch-size", str(batch), "--sample-rate", "0.2", "--no-progress"]
    kills, replays, started, logs = 0, [], time.monotonic(), []
    while kills < 20:
        log = work / f"run{kills}.log"
        logs.append(log)
        proc = cli(start, state, log)
        before = committed(state, mid)
        # A random number of batches in, then a random moment inside the next one: paced by
        # batches, not seconds, so a faster target still dies mid-run twenty times.
        if not wait_for_ack(proc, log, above=before + rng.randrange(3), timeout=120):
            break
        sleep_into_next_batch(rng, *logs)
        if kill9(proc) != -9:
            break  # finished first
        kills += 1
        now = committed(state, mid)
        assert now >= before  # never rewinds
        replays.append(max_acked(log) - now)
    finish = cli(["migrate", "resume", "--id", mid, "--no-progress"], state, work / "last.log")
    out = finish.communicate(timeout=600)[0].decode()
    assert finish.returncode == 0, out
    seconds = time.monotonic() - started
    figures = check_end(source, target, state, mid, n)
    print(f"\n20 random kills: {kills} kills, replays per kill {replays} (max {max(replays)}), "
          f"{seconds:.0f} s, {figures}")
    record_property("kills", kills)
    record_property("replays", replays)
    assert kills == 20, "the migration finished before twenty kills landed"
    assert max(replays) <= 1 and min(replays) >= 0


def test_crash_loop_on_100k_records(work, record_property):
    """Kill every run after a seeded random 1-10 more acknowledged batches until the
    migration completes. Paced by batches, not seconds: how many kills land does not depend on
    how fast the target writes (a kill with p=0.3 every second saw 21 kills on a busy machine
    and 1 on a quiet one, once one commit per batch made the embedded target fast)."""
    n, batch = 100_000, 1000
    source = f"synthetic://loop?n={n}&dim=8&seed=100&metric=dot"
    target = f"qdrant://{work}/t?collection=c"
    state, mid = work / "state.db", "loop"
    rng = random.Random(100_000)
    start = ["migrate", "start", "--source", source, "--target", target, "--id", mid,
             "--batch-size", str(batch), "--no-progress"]
    kills, replays, runs, started, logs = 0, [], 0, time.monotonic(), []
    while True:
        runs += 1
        log = work / f"run{runs}.log"
        logs.append(log)
        proc = cli(start, state, log)
        before = committed(state, mid)
        if wait_for_ack(proc, log, above=before + rng.randint(0, 9), timeout=300):
            sleep_into_next_batch(rng, *logs)
            kill9(proc)
        proc.wait()
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.communicate()[0].decode()
        kills += 1
        now = committed(state, mid)
        assert now >= before
        replays.append(max(0, max_acked(log) - now))
        assert time.monotonic() - started < 3600, "no end in sight"
    seconds = time.monotonic() - started
    figures = check_end(source, target, state, mid, n)
    store = StateStore(state)
    batches = store.get(mid).batches
    store.close()
    print(f"\ncrash loop, {n} records in batches of {batch}: {runs} runs, {kills} kills, "
          f"replays per kill {replays} (total {sum(replays)}, max {max(replays, default=0)}), "
          f"{batches} batches committed, {seconds:.0f} s, {figures}")
    record_property("kills", kills)
    record_property("replays", replays)
    record_property("seconds", round(seconds))
    assert kills >= 3, "too few kills to mean anything"
    assert max(replays) <= 1
    assert batches == n // batch  # every batch committed exactly once
