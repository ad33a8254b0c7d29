"""A whole Chroma migration with the network blocked: in a child process every socket connect
and name lookup is refused and recorded; memory -> Chroma (cosine) -> memory must complete,
verified, with no attempt at all (no telemetry, no embedding-model download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network blocked by the test")
real_connect = socket.socket.connect
def connect(self, address):
    if self.family == socket.AF_UNIX:
        return real_connect(self, address)
    refuse(address)
socket.socket.connect = connect
socket.socket.connect_ex = connect
socket.create_connection = refuse
socket.getaddrinfo = refuse

import numpy as np
from vmkit import Migration
from vmkit.connectors import connect as open_uri
from vmkit.connectors.base import TargetSpec
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

work = sys.argv[1]
with open_uri("memory://src") as src:
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(3)
    src.upsert(RecordBatch([f"r{i}" for i in range(600)], rng.standard_normal((600, 8)).astype(np.float32),
                           [{"document": f"text {i}", "rank": i, "half": i / 2, "tags": ["a", "b"]} for i in range(600)]))
out = {}
for mid, s, t in [("in", "memory://src", f"chroma://{work}/db?collection=docs"),
                  ("out", f"chroma://{work}/db?collection=docs", "memory://back")]:
    Migration.create(s, t, migration_id=mid, state=f"{work}/state.db").run()
    store = StateStore(f"{work}/state.db")
    rec = store.get(mid)
    out[mid] = [rec.state, rec.verification, rec.records_read, rec.records_written]
    store.close()
with open_uri("memory://back") as back:
    b = back.fetch(["r5"])
    out["doc"] = b.metadata[0].get("document")
out["attempts"] = attempts
print("RESULT " + json.dumps(out))
'''


def test_chroma_migration_makes_no_network_attempt(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    env.pop("CHROMA_TOKEN", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    got = json.loads(line.removeprefix("RESULT "))
    assert got["attempts"] == []
    assert got["in"] == ["completed", "passed", 600, 600]
    assert got["out"] == ["completed", "passed", 600, 600]
    assert got["doc"] == "text 5"  # the document went in as a Chroma document and came back
