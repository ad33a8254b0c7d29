"""Issue 21 as a new user met it: Qdrant -> Weaviate with a source key ``price_temp`` (a reserved
ending since 2026-05) and a 'store is read-only' episode (disk pressure) during the copy. Before,
the first stopped the migration (422 on add property) and the second dead-lettered hundreds of
records; both now end completed, verified in full, nothing dead-lettered."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")

from emulators.weaviate_emulator import READ_ONLY, Faults, WeaviateEmulator

from vmkit import Migration, TargetSpec, connect
from vmkit.core.records import RecordBatch

N, DIM = 2500, 16


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[WeaviateEmulator]:
    no_sleep = types.SimpleNamespace(sleep=lambda s: None)
    monkeypatch.setattr("weaviate.retry.time", no_sleep)
    monkeypatch.setattr("vmkit.connectors.weaviate.connector.time", no_sleep)
    with WeaviateEmulator() as server:
        yield server


def test_price_temp_and_a_read_only_episode(emu: WeaviateEmulator, tmp_path: Path) -> None:
    source = f"qdrant://{tmp_path}/q?collection=docs"
    rng = np.random.default_rng(21)
    with connect(source) as q:
        q.create(TargetSpec("docs", DIM, "cosine"))
        q.upsert(RecordBatch(list(range(1, N + 1)), rng.standard_normal((N, DIM)).astype(np.float32),
                             [{"price_temp": i / 4, "title": f"doc {i}"} for i in range(N)]))
    # the disk fills during the copy: 9 BatchObjects calls fail every object, more than the
    # connector's own retries (object_retries=3: 4 calls), so the run's retry policy is needed too
    emu.faults = Faults(batch_fail_next=[READ_ONLY] * 9)
    m = Migration.create(source, emu.uri("Docs"), state=str(tmp_path / "state.db"), migration_id="issue21",
                         retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    status = m.status()
    assert (status.records_written, status.records_rejected, status.verification) == (N, 0, "passed")
    assert m.plan.renames == {"price_temp": "price_temp_"} and emu.faults.injected == 9
    with connect(emu.uri("Docs")) as w:
        assert w.count() == N
