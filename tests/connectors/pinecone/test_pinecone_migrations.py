"""Whole migrations through the runner: Pinecone (emulator) -> Qdrant (embedded, on disk) and
back, 21,000 records in three namespaces with sparse values, under injected faults."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator

from vmkit import Migration
from vmkit.connectors import connect

pytest.importorskip("pinecone")
pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

DIM = 32
SPACES = ("", "alpha", "beta")
PER_NS = 7000
FAST = {"retry_initial_s": 0.05, "retry_cap_s": 2.0, "retry_attempts": 20}  # 10% 429s + 5% 5xx


def _source_rows(ns: str) -> list[tuple]:
    vecs = np.random.default_rng(len(ns)).standard_normal((PER_NS, DIM)).astype(np.float32)
    return [(f"{ns or 'dflt'}-{i:05d}", vecs[i], {"i": i, "ns": ns, "tags": ["a", ns]},
             ([i, i + 3, 2**31 + i], [0.5, 1.0, 2.0]) if i % 2 else None)
            for i in range(PER_NS)]


def _faults_on(emu: PineconeEmulator) -> None:
    f = emu.faults
    f.rate_429, f.rate_5xx, f.lag_ms, f.ghost_writes = 0.10, 0.05, 300, 0.5
    f.retry_after = None  # the SDK then backs off on its own; the other 429 flavour is below
    f.inject(429, retry_after=1, times=2)


@pytest.fixture(scope="module")
def emu() -> Iterator[PineconeEmulator]:
    from pinecone._internal import http_client

    with pytest.MonkeyPatch.context() as mp, PineconeEmulator(api_key=EMU_KEY, seed=7) as e:
        mp.setenv("PINECONE_CONTROLLER_HOST", e.url)
        mp.setenv("PINECONE_API_KEY", e.api_key)
        # The SDK's own back-off (0.25-0.75 s a retry, or Retry-After) at 1/20 scale, through
        # the seam the SDK provides for tests: same retries, less wall-clock time.
        mp.setattr(http_client, "_retry_sleep", lambda s: time.sleep(s / 20))
        e.create_index("src", DIM, "dotproduct")
        for ns in SPACES:
            e.seed("src", _source_rows(ns), namespace=ns)
        yield e


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tmpfs when there is one: embedded Qdrant commits SQLite once per point."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="vmkit-pc-", dir=shm)) if shm else \
        tmp_path_factory.mktemp("pc")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def to_qdrant(emu: PineconeEmulator, work: Path) -> dict:
    """Pinecone -> Qdrant: 7 batches, a stop, then a resume from the stored cursor, with 429s,
    5xx, ghost writes and the 300 ms lag throughout, verification included."""
    target = f"qdrant:///{work}/q?collection=c"
    state = str(work / "state.db")
    m = Migration.create("pinecone://src", target, state=state, migration_id="p2q",
                         batch_size=1000, **FAST)
    _faults_on(emu)
    try:
        first = m.run(max_batches=7)
        done = {"n": first.records_read}
        final = Migration.open("p2q", state=state).run()
    finally:
        emu.faults.clear()
    return {"first": first, "final": final, "done": done, "target": target,
            "injected": emu.faults.injected}


def test_pinecone_to_qdrant_under_faults(to_qdrant: dict) -> None:
    first, final = to_qdrant["first"], to_qdrant["final"]
    # 7 batches, some shorter than 1000 (a list page lost to a fault ends its batch early)
    assert first.state == "in_progress" and 0 < to_qdrant["done"]["n"] <= 7000
    assert final.state == "completed", str(final)
    assert final.verification == "passed", final.verification_detail
    detail = final.verification_detail or {}
    assert detail.get("matched") == len(SPACES) * PER_NS
    assert final.records_read == final.records_written == len(SPACES) * PER_NS
    assert final.balanced and final.records_rejected == 0
    assert to_qdrant["injected"] > 20  # faults really were served
    with connect(to_qdrant["target"]) as q:
        assert q.count() == len(SPACES) * PER_NS


def test_qdrant_to_pinecone_under_faults(to_qdrant: dict, emu: PineconeEmulator,
                                         work: Path) -> None:
    """Back into a new Pinecone index (vmkit creates it), faults on from planning through
    sampled validation and full verification: every read of the target is retried."""
    state = str(work / "state2.db")
    _faults_on(emu)
    try:
        m = Migration.create(to_qdrant["target"], "pinecone://back", state=state,
                             migration_id="q2p", batch_size=1000, **FAST)
        result = m.run()
        injected = emu.faults.injected
    finally:
        emu.faults.clear()
    assert injected > to_qdrant["injected"] + 20  # faults really were served on this run too
    assert result.state == "completed", str(result)
    assert result.verification == "passed"
    back = connect("pinecone://back")
    assert back.count() == len(SPACES) * PER_NS
    # the original Pinecone ids come back (kept in _vmkit_source_id on the Qdrant side)
    for ns in SPACES:
        rows = _source_rows(ns)[:50]
        got = back.fetch([r[0] for r in rows])
        assert got.ids == [r[0] for r in rows]
        assert np.array_equal(got.vectors, np.stack([r[1] for r in rows]))
        kept = {"namespace": ns} if ns else {}  # the Qdrant-side namespace field stays
        assert got.metadata[1] == {"i": 1.0, "ns": ns, "tags": ["a", ns], **kept}
        assert got.sparse is not None and got.sparse[1] is not None
    assert emu.indexes["back"].metric == "dotproduct"
