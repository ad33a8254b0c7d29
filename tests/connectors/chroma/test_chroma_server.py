"""chroma://HOST:PORT/NAME against a real Chroma server (``chroma run`` from the chromadb wheel,
started by the test on a free loopback port): a migration into it and out of it, verified."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

pytest.importorskip("chromadb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("chroma") or str(Path(__import__("sys").executable).with_name("chroma"))
    port = free_port()
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "srv"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "chroma run exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "chroma server did not start"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_migration_through_a_chroma_server(server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHROMA_TOKEN", "not-checked-by-this-server")  # sent as a header, never in the URI
    with connect("memory://srv-src") as src:
        src.create(TargetSpec("s", 8, "euclidean"))
        rng = np.random.default_rng(2)
        src.upsert(RecordBatch([f"r{i}" for i in range(1200)], rng.standard_normal((1200, 8)).astype(np.float32),
                               [{"document": f"t{i}", "score": i / 7} for i in range(1200)]))
    state = tmp_path / "state.db"
    for mid, s, t in [("in", "memory://srv-src", f"chroma://{server}/from-memory"),
                      ("out", f"chroma://{server}/from-memory", "memory://srv-back")]:
        Migration.create(s, t, migration_id=mid, state=state).run()
        store = StateStore(state)
        rec = store.get(mid)
        store.close()
        assert (rec.state, rec.verification, rec.records_read, rec.records_written) == ("completed", "passed", 1200, 1200)
    with connect(f"chroma://{server}/from-memory") as conn:
        assert conn.describe().metric == "euclidean"
        assert conn._collection().get(ids=["r3"], include=["documents"])["documents"] == ["t3"]
