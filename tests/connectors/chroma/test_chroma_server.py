"""chroma://HOST:PORT/NAME against a real Chroma server (``chroma run`` from the chromadb wheel,
started by the test on a free loopback port): a migration into it and out of it, verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

pytest.importorskip("chromadb")


def test_migration_through_a_chroma_server(chroma_server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHROMA_TOKEN", "not-checked-by-this-server")  # sent as a header, never in the URI
    with connect("memory://srv-src") as src:
        src.create(TargetSpec("s", 8, "euclidean"))
        rng = np.random.default_rng(2)
        src.upsert(RecordBatch([f"r{i}" for i in range(1200)], rng.standard_normal((1200, 8)).astype(np.float32),
                               [{"document": f"t{i}", "score": i / 7} for i in range(1200)]))
    state = tmp_path / "state.db"
    for mid, s, t in [("in", "memory://srv-src", f"chroma://{chroma_server}/from-memory"),
                      ("out", f"chroma://{chroma_server}/from-memory", "memory://srv-back")]:
        Migration.create(s, t, migration_id=mid, state=state).run()
        store = StateStore(state)
        rec = store.get(mid)
        store.close()
        assert (rec.state, rec.verification, rec.records_read, rec.records_written) == ("completed", "passed", 1200, 1200)
    with connect(f"chroma://{chroma_server}/from-memory") as conn:
        assert conn.describe().metric == "euclidean"
        assert conn._collection().get(ids=["r3"], include=["documents"])["documents"] == ["t3"]
