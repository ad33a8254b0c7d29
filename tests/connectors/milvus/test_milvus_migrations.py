"""Qdrant (embedded) <-> Milvus Lite through the real CLI: a child `vmkit migrate start` into
Milvus is SIGKILLed after its first committed batch, resumed, fully verified, and gives the
records back equal; Milvus -> Qdrant brings back the original ids (ints stay ints), vectors
and payloads; plan errors (dimension mismatch, an auto_id target) stop a run before any write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("qdrant_client")

from copying import scratch_dir
from resilience.helpers import cli, contents, resume, start_and_kill_after_a_batch

from vmkit import connect
from vmkit.connectors.datasets import fill
from vmkit.state.store import StateStore

N, DIM, CLI_BATCH = 4_000, 16, 200
Contents = dict[object, tuple[bytes, object]]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from scratch_dir(tmp_path_factory, "vmkit-milvus-")


@pytest.fixture(scope="module")
def qdrant_src(base: Path) -> str:
    uri = f"qdrant://{base}/q?collection=docs"
    fill(uri, N, DIM)  # even rows int ids, odd rows UUIDs; nested, null, list and unicode payloads
    return uri


@pytest.fixture(scope="module")
def original(qdrant_src: str) -> Contents:
    return contents(qdrant_src)


def _release(path: str) -> None:
    """Let another process open a Milvus Lite directory this one used (one process per .db)."""
    from milvus_lite.server_manager import server_manager_instance

    from vmkit.connectors.milvus.connector import _LITE

    _LITE.close_all()
    server_manager_instance.release_server(path)


def record(state: Path, mid: str):
    store = StateStore(state)
    try:
        return store.get(mid)
    finally:
        store.close()


def run(args: list[str], state: Path) -> tuple[int, str]:
    proc = cli(args, state)
    out = proc.communicate(timeout=900)[0].decode()
    return proc.returncode, out


def test_qdrant_to_milvus_killed_and_resumed_then_back_to_qdrant(base: Path, qdrant_src: str,
                                                                 original: Contents) -> None:
    db = str(base / "m.db")
    target = f"milvus://{db}?collection=docs"
    state = base / "q2m.db"
    done = start_and_kill_after_a_batch(qdrant_src, target, "q2m", state, CLI_BATCH)
    assert 1 <= done < N // CLI_BATCH, f"the kill landed after {done} batches"
    code, out = resume("q2m", state)
    assert code == 0, out
    rec = record(state, "q2m")
    assert (rec.state, rec.verification) == ("completed", "passed")
    assert rec.batches > done and rec.records_read == N

    got = contents(target)  # read independently of the verifier
    _release(db)
    assert len(got) == N
    for rid, (vec, meta) in original.items():  # int ids travel as decimal strings, marked for the way back
        marked = {**meta, "_vmkit_id_kind": "uint"} if isinstance(rid, int) else meta
        assert got[str(rid)] == (vec, marked), rid

    back = f"qdrant://{base}/back?collection=docs"
    code, out = run(["migrate", "start", "--source", target, "--target", back, "--id", "m2q",
                     "--batch-size", "500", "--no-progress"], base / "m2q.db")
    assert code == 0, out
    rec = record(base / "m2q.db", "m2q")
    assert (rec.state, rec.verification, rec.records_read) == ("completed", "passed", N)
    again = contents(back)
    assert again.keys() == original.keys() and {type(k) for k in again} == {int, str}
    for rid, (vec, meta) in original.items():
        assert again[rid][1] == meta, rid
        np.testing.assert_array_equal(np.frombuffer(again[rid][0], np.float32), np.frombuffer(vec, np.float32))


def test_dimension_mismatch_with_an_existing_target_is_a_plan_error(base: Path, qdrant_src: str) -> None:
    from vmkit import TargetSpec

    db = str(base / "dim.db")
    with connect(f"milvus://{db}?collection=docs") as t:
        t.create(TargetSpec("docs", DIM + 1, "cosine"))
    _release(db)
    code, out = run(["migrate", "start", "--source", qdrant_src, "--target", f"milvus://{db}?collection=docs",
                     "--id", "dim", "--no-progress", "--into-nonempty-target"], base / "dim-state.db")
    assert code != 0 and "dimension" in out, out
    with connect(f"milvus://{db}?collection=docs") as t:
        assert t.count() == 0
    _release(db)


def test_auto_id_target_is_refused_before_any_write(base: Path, qdrant_src: str) -> None:
    from pymilvus import DataType, MilvusClient

    db = str(base / "auto.db")
    c = MilvusClient(db)
    s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=True)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    ip = c.prepare_index_params()
    ip.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
    c.create_collection("docs", schema=s, index_params=ip)
    c.close()
    _release(db)
    code, out = run(["migrate", "start", "--source", qdrant_src, "--target", f"milvus://{db}?collection=docs",
                     "--id", "auto", "--no-progress"], base / "auto-state.db")
    assert code == 2 and "plan has errors" in out and "auto_id" in out, out
    with connect(f"milvus://{db}?collection=docs") as t:
        assert t.count() == 0
    _release(db)

