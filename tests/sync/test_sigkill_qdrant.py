"""Real SIGKILLs inside watermark windows, embedded Qdrant source and target directories.

Design: embedded Qdrant takes a directory lock per process, so the application's writer and the
copier share one child process (qdrant_child.py); each SIGKILL kills both, mid-write included.
The parent only prepares the data and checks the outcome once the directories are free again.
The default run is small (embedded Qdrant persists one point per SQLite commit, and its
in-memory index grows quadratically: 50,000 points take minutes just to load); the 50,000-record
run is marked slow. The 50,000-record in-process run with a live writer is test_live_writer.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmkit import connect, verify
from vmkit.planning.plan import Plan
from vmkit.state.journal import head, read_row
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync

from .helpers import fill, lost_and_resurrected, read_oplog

pytest.importorskip("qdrant_client")
CHILD = Path(__file__).with_name("qdrant_child.py")


def child(state: Path, oplog: Path, n: int, gen: int, crash: str | None,
          timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VMKIT_CRASH_AT"}
    env["SYNC_WINDOW_WRITES"] = "1"
    if crash:
        env["VMKIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, str(CHILD), str(state), "k", str(n), str(oplog), str(gen)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def scenario(tmp_path: Path, n: int, batch: int, timeout: float) -> None:
    src, dst = f"qdrant://{tmp_path}/src?collection=docs", f"qdrant://{tmp_path}/dst?collection=docs"
    state, oplog = tmp_path / "state.db", tmp_path / "oplog.jsonl"
    fill(src, n, metric="dot")
    Sync.create(src, dst, migration_id="k", state=state, batch_size=batch)
    store = StateStore(state)

    # 1st SIGKILL: inside the 3rd watermark window, right after updates of rows of that chunk
    p = child(state, oplog, n, 1, "sync_window:3", timeout)
    assert p.returncode == -9, p.stderr[-3000:]
    row = read_row(store, "k")
    assert row.chunks == 2 and not row.scan_done
    assert head(store, "k") > row.applied_seq  # events of the killed window, not applied yet

    # 2nd SIGKILL: rows of the 3rd chunk of this run written to the target, commit not made
    p = child(state, oplog, n, 2, "sync_before_commit:3", timeout)
    assert p.returncode == -9, p.stderr[-3000:]
    assert read_row(store, "k").chunks == 4

    # 3rd run: no crash; it runs to the freeze point and verifies
    p = child(state, oplog, n, 3, None, timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["passed"] and out["phase"] == "verified", out
    print(f"\n{out['ops']} writes in the last run ({out['ops'] / out['seconds']:.0f}/s)\n{out['status']}")

    # the parent checks again, independently, now that the directories are free
    st = Sync.open("k", store).status()
    assert st.counters["rows_dropped"] > 0 and st.lag == 0
    with connect(src) as s, connect(dst) as d:
        assert verify(s, d, Plan.from_json(store.get("k").plan_json)).passed
    last, uncertain = read_oplog(oplog)
    checked = {rid: op for rid, op in last.items() if rid not in uncertain}
    assert len(checked) > 100 and any(op == "delete" for op, _ in checked.values())
    assert lost_and_resurrected(checked, dst) == ([], [])


def test_two_sigkills_inside_watermark_windows(tmp_path):
    scenario(tmp_path, n=3000, batch=200, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_sigkills_50k(tmp_path):
    scenario(tmp_path, n=50_000, batch=1000, timeout=3000)
