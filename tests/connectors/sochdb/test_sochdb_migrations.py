"""Qdrant (embedded) <-> SochDB through the runner and the real CLI: a child `vmkit migrate`
is SIGKILLed after its first committed batch, resumed, fully verified, and a round trip
Qdrant -> SochDB -> Qdrant gives back the original records (ids, vectors, payloads)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sochdb")
pytest.importorskip("qdrant_client")

from copying import scratch_dir
from resilience.helpers import contents, resume, start_and_kill_after_a_batch

from vmkit import Migration
from vmkit.connectors.datasets import fill
from vmkit.state.store import StateStore

log = logging.getLogger(__name__)
N, DIM, CLI_BATCH = 20_000, 16, 500  # ~70 s for the file on an idle 2-core VM (Qdrant dominates)
Contents = dict[object, tuple[bytes, object]]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from scratch_dir(tmp_path_factory, "vmkit-sochdb-")


@pytest.fixture(scope="module")
def qdrant_src(base: Path) -> str:
    uri = f"qdrant://{base}/q?collection=docs"
    started = time.monotonic()
    fill(uri, N, DIM)  # mixed int and UUID ids, nested/null/list payloads
    log.info("filled %d Qdrant records in %.1f s", N, time.monotonic() - started)
    return uri


@pytest.fixture(scope="module")
def original(qdrant_src: str) -> Contents:
    return contents(qdrant_src)


@pytest.fixture(scope="module")
def sochdb_src(base: Path, qdrant_src: str) -> str:
    """First leg of the round trip, in-process through the Migration API."""
    uri = f"sochdb://{base}/s?collection=docs"
    started = time.monotonic()
    m = Migration.create(qdrant_src, uri, migration_id="x", state=base / "s.db", batch_size=1000)
    st = m.run()
    assert st.state == "completed" and st.verification == "passed", str(st)
    log.info("Qdrant -> SochDB, %d records, verified in %.1f s", N, time.monotonic() - started)
    return uri


def kill_and_resume(source: str, target: str, mid: str, state: Path) -> None:
    """Start a child, SIGKILL it once a batch is committed, resume it to a verified end."""
    done = start_and_kill_after_a_batch(source, target, mid, state, CLI_BATCH, timeout=120)
    assert 1 <= done < N // CLI_BATCH, f"the kill landed after {done} batches"
    code, out = resume(mid, state)
    assert code == 0, out
    assert "[HNSW]" not in out  # the engine's log lines stay out of the operator's terminal
    store = StateStore(state)
    rec = store.get(mid)
    store.close()
    assert (rec.state, rec.verification) == ("completed", "passed")
    assert rec.batches > done and rec.records_read == N


def test_qdrant_to_sochdb_killed_and_resumed(base: Path, qdrant_src: str, original: Contents) -> None:
    target = f"sochdb://{base}/k?collection=docs"
    kill_and_resume(qdrant_src, target, "q2s", base / "q2s.db")
    got = contents(target)
    assert len(got) == len(original) == N
    for rid, (vec, meta) in original.items():  # int ids travel as strings, marked for the way back
        marked = {**meta, "_vmkit_id_kind": "uint"} if isinstance(rid, int) else meta
        assert got[str(rid)] == (vec, marked), rid


def test_round_trip_back_to_qdrant_killed_and_resumed(base: Path, sochdb_src: str,
                                                      original: Contents) -> None:
    target = f"qdrant://{base}/back?collection=docs"
    kill_and_resume(sochdb_src, target, "s2q", base / "s2q.db")
    back = contents(target)
    assert back.keys() == original.keys()  # ints stay ints, UUIDs stay UUIDs
    assert {type(k) for k in back} == {int, str}
    for rid, (vec, meta) in original.items():
        got_vec, got_meta = back[rid]
        assert got_meta == meta, rid  # no _vmkit_* marker left behind
        np.testing.assert_array_equal(np.frombuffer(got_vec, np.float32), np.frombuffer(vec, np.float32))
