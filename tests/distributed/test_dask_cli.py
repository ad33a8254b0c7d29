"""``vmkit migrate start --workers 2`` SIGKILLed mid-run (the coordinator), then
``vmkit migrate resume --workers 2``: equal at the end, full verification passed, counts
reconciled; and the bad-input lines (a scheduler that does not answer, an embedded engine)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from engines.postgres import PgServer, query

from vmkit.state.partitions import rows
from vmkit.state.store import StateStore

N, BATCH = 10_000, 200


def _vmkit(*args: str, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "vmkit", *args, "--state", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _batches(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT batches FROM migrations WHERE id='dk'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def test_coordinator_killed_then_resumed(pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    target = pg_server.uri(pg_db, "docs")
    proc = _vmkit("migrate", "start", "--id", "dk", "--source", f"synthetic://s?n={N}&dim=16",
                  "--target", target, "--batch-size", str(BATCH), "--workers", "2", "--chunk-batches", "2", "--no-progress",
                  state=state)
    deadline = time.monotonic() + 120
    while _batches(state) < 10:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for child in children:  # the LocalCluster's processes, orphaned by the kill
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    done = _batches(state)
    assert 10 <= done < N // BATCH, f"the kill landed after {done} batches"

    out = subprocess.run([sys.executable, "-m", "vmkit", "migrate", "resume", "--id", "dk", "--workers", "2",
                          "--no-progress", "--state", str(state)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    store = StateStore(state)
    rec = store.get("dk")
    parts = rows(store, "dk")
    store.close()
    assert (rec.state, rec.verification) == ("completed", "passed")
    assert rec.records_read == rec.records_written == N  # nothing counted twice
    assert len(parts) == 8 and sum(p.records_read for p in parts) == N
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == N


def test_scheduler_not_answering_is_one_line(pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    state = tmp_path / "state.db"
    out = subprocess.run([sys.executable, "-m", "vmkit", "migrate", "start", "--id", "ds",
                          "--source", "synthetic://s?n=100&dim=4", "--target", pg_server.uri(pg_db, "t"),
                          "--scheduler", "tcp://127.0.0.1:9", "--no-progress", "--state", str(state)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no Dask scheduler answered at tcp://127.0.0.1:9" in errors[0], out.stderr
    store = StateStore(state)
    rec = store.get("ds")
    store.close()
    assert rec.records_read == 0 and rec.state in ("not_started", "in_progress")  # resumable


def test_qdrant_local_refused(tmp_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    state = tmp_path / "state.db"
    out = subprocess.run([sys.executable, "-m", "vmkit", "migrate", "start", "--id", "dq",
                          "--source", "synthetic://s?n=100&dim=4", "--target", f"qdrant://{tmp_path}/q?collection=c",
                          "--workers", "2", "--no-progress", "--state", str(state)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the Dask executor cannot use qdrant://" in out.stderr
    assert "Qdrant local mode opens its directory in one process only" in out.stderr
    store = StateStore(state)
    rec = store.get("dq")
    store.close()
    assert rec.state == "not_started"  # refused before anything was created or written
