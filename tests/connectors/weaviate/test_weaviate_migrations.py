"""End-to-end migrations Weaviate <-> Qdrant (embedded) through the runner, verified in full."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")

from copying import fill, rich_records
from emulators.weaviate_emulator import Faults, WeaviateEmulator

from vmkit import Migration, TargetSpec, connect
from vmkit.core.ids import to_target_id
from vmkit.core.records import RecordBatch

DIM = 16
N = 120
METRICS = ["cosine", "euclidean", "dot"]


def records(ids: list[Any], ns: str = "", seed: int = 0) -> RecordBatch:
    return rich_records(ids, ns, seed, DIM)


def seed(uri: str, metric: str, batches: list[RecordBatch]) -> None:
    fill(uri, metric, batches, DIM)


def run(tmp_path: Path, source: str, target: str, mid: str) -> Any:
    m = Migration.create(source, target, state=str(tmp_path / "state.db"), migration_id=mid,
                         batch_size=50, sample_rate=1.0, retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    return m


@pytest.mark.parametrize("metric", METRICS)
def test_weaviate_to_qdrant(weaviate_emu: WeaviateEmulator, tmp_path: Path, metric: str) -> None:
    ids = [str(uuid.UUID(int=i * 15485863 + 3)) for i in range(N)]
    src = records(ids)
    seed(weaviate_emu.uri("Docs"), metric, [src])
    target = f"qdrant://{tmp_path}/q?collection=c"
    m = run(tmp_path, weaviate_emu.uri("Docs"), target, f"wq-{metric}")
    assert m.verify().passed
    with connect(target) as q:
        info = q.describe()
        assert info is not None and (info.count, info.metric, info.dimension) == (N, metric, DIM)
        got = q.fetch([ids[5]])
        assert got.metadata[0] == src.metadata[5]
        if metric != "cosine":  # Qdrant stores unit vectors under cosine
            assert np.array_equal(got.vectors[0], src.vectors[5])


@pytest.mark.parametrize("metric", METRICS)
def test_qdrant_to_weaviate(weaviate_emu: WeaviateEmulator, tmp_path: Path, metric: str) -> None:
    int_ids: list[Any] = list(range(1, N - 8))  # 111 int ids + 9 uuid ids
    uuid_ids: list[Any] = [str(uuid.UUID(int=7 * i + 1)) for i in range(9)]
    source = f"qdrant://{tmp_path}/q?collection=c"
    seed(source, metric, [records(int_ids), records(uuid_ids, seed=1)])
    run(tmp_path, source, weaviate_emu.uri("Docs"), f"qw-{metric}")
    with connect(weaviate_emu.uri("Docs")) as w:
        info = w.describe()
        assert info is not None and (info.count, info.metric, info.dimension) == (N, metric, DIM)
        assert w.fetch([uuid_ids[2]]).metadata[0]["rank"] == 2  # uuid ids kept as they are
        back = w.fetch([to_target_id(3, frozenset({"uuid"}))[0]])
        # int ids mapped, the original kept (as a string, with its kind, for typed targets)
        assert back.metadata[0]["_vmkit_source_id"] == "3" and back.metadata[0]["_vmkit_id_kind"] == "uint"
    props = {p["name"]: p["dataType"][0] for p in weaviate_emu.store.collections["Docs"].schema["properties"]}
    assert props["rank"] == "int" and props["info"] == "object" and props["tags"] == "text[]"


def test_weaviate_tenants_to_qdrant(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    uri = weaviate_emu.uri("Docs", multi_tenancy="true")
    seed(uri, "dot", [records([str(uuid.UUID(int=i + 1)) for i in range(40)], ns="acme"),
                      records([str(uuid.UUID(int=i + 1)) for i in range(25)], ns="zeta", seed=2)])
    target = f"qdrant://{tmp_path}/q?collection=c"
    run(tmp_path, uri, target, "tenants")
    with connect(target) as q:
        assert q.count() == 65  # the same uuid in two tenants stays two records


@pytest.mark.parametrize("multi_tenancy", [True, False])
def test_namespaces_become_tenants_or_a_field(weaviate_emu: WeaviateEmulator, tmp_path: Path, multi_tenancy: bool) -> None:
    seed("memory://src", "cosine", [records([f"doc-{i}" for i in range(30)], ns="prod"),
                                    records([f"doc-{i}" for i in range(20)], ns="dev", seed=3)])
    target = weaviate_emu.uri("Docs", multi_tenancy="true") if multi_tenancy else weaviate_emu.uri("Docs")
    run(tmp_path, "memory://src", target, f"ns-{multi_tenancy}")
    with connect(target) as w:
        info = w.describe()
        assert info is not None and info.count == 50
        if multi_tenancy:
            assert info.namespaces == {"prod": 30, "dev": 20}
        else:  # one partition: the namespace travels in a field, ids scoped by it
            metas = [m for b, _ in [w.scan(None, 100)] for m in b.metadata]
            assert sorted({m["namespace"] for m in metas}) == ["dev", "prod"]


def test_keys_weaviate_would_change_are_renamed_by_the_plan(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    keys = {"Title": "t", "user-id": 7, "id": "x", "name": "n", "Name": "N", "vector": [1.5], "ok": True}
    src = RecordBatch([f"r{i}" for i in range(12)], np.ones((12, DIM), np.float32) * np.arange(1, 13)[:, None],
                      [dict(keys) for _ in range(12)])
    seed("memory://src", "dot", [src])
    m = run(tmp_path, "memory://src", weaviate_emu.uri("Docs"), "renames")  # completed = verified in full
    stored = {p["name"] for p in weaviate_emu.store.collections["Docs"].schema["properties"]}
    assert {"ok", "name"} <= stored and not {"Title", "title", "id", "vector", "user-id"} & stored
    assert set(m.plan.renames) >= {"Title", "user-id", "id", "Name", "vector"}


def test_faulty_target_still_completes_and_dead_letters_refusals(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    ids = [f"doc-{i}" for i in range(N)]
    seed("memory://src", "cosine", [records(ids)])
    refused = str(to_target_id("doc-17", frozenset({"uuid"}))[0])
    weaviate_emu.faults = Faults(seed=3, object_fail_rate=0.05, object_fail_transient=True,
                        fail_next=["RESOURCE_EXHAUSTED", "UNAVAILABLE"], object_fail_ids={refused})
    m = run(tmp_path, "memory://src", weaviate_emu.uri("Docs"), "faulty")
    status = m.status()
    assert (status.records_written, status.records_rejected) == (N - 1, 1)
    assert weaviate_emu.faults.injected > 3  # faults did fire
    weaviate_emu.faults = Faults()
    with connect(weaviate_emu.uri("Docs")) as w:
        assert w.count() == N - 1 and len(w.fetch([refused])) == 0


def test_two_named_vectors_qdrant_to_weaviate_and_back(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    """Each named vector keeps its name, dimension and metric both ways, verified in full."""
    spec = TargetSpec("c", DIM, "cosine", vector_name="text", extra_vectors={"image": {"dimension": 6, "metric": "dot"}})
    rng = np.random.default_rng(9)
    image = rng.standard_normal((N, 6)).astype(np.float32)
    src = f"qdrant://{tmp_path}/q?collection=src"
    with connect(src) as conn:
        conn.create(spec)
        b = records(list(range(N)))
        conn.upsert(RecordBatch(b.ids, b.vectors, b.metadata, named={"image": image}, vector_name="text"))
    to_w = run(tmp_path, src, weaviate_emu.uri("Docs"), "q2w")
    assert to_w.status().verification == "passed"
    with connect(weaviate_emu.uri("Docs")) as w:
        info = w.describe()
        assert info.named_vectors == {"text": {"dimension": DIM, "metric": "cosine"},
                                      "image": {"dimension": 6, "metric": "dot"}}
        got = w.fetch([to_target_id(7, frozenset({"uuid"}))[0]]).dense_vectors()
        assert np.array_equal(got["image"][0], image[7])
    back = run(tmp_path, weaviate_emu.uri("Docs"), f"qdrant://{tmp_path}/back?collection=docs", "w2q")
    assert back.status().verification == "passed"
    with connect(f"qdrant://{tmp_path}/back?collection=docs") as q:
        got = q.fetch([7]).dense_vectors()  # the original int id comes back
        assert set(got) == {"text", "image"} and np.array_equal(got["image"][0], image[7])
