"""A legacy collection with named vectors added later (legacy vector + named vectors): every vector
space is read and migrated; a named vector whose index was dropped is named by the plan."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")

from emulators.weaviate_emulator import WeaviateEmulator

from vmkit import Migration, connect

N = 40
SINGLE = 1  # base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32


def _bytes(v: np.ndarray) -> bytes:
    return struct.pack(f"<{len(v)}f", *v.tolist())


def legacy_with_named(weaviate_emu: WeaviateEmulator, dropped: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
    """Docs: a legacy dot vector (dim 6), then 'img' (cosine, dim 4) and 'old' (l2, dim 3) added
    later; objects carry all three. With ``dropped`` the index of 'old' is dropped afterwards."""
    store = weaviate_emu.store
    store.create_class({"class": "Docs", "vectorIndexConfig": {"distance": "dot"}})
    store.add_named_vector("Docs", "img", "cosine")
    store.add_named_vector("Docs", "old", "l2-squared")
    rng = np.random.default_rng(5)
    vecs = {"": rng.standard_normal((N, 6)).astype(np.float32), "img": rng.standard_normal((N, 4)).astype(np.float32),
            "old": rng.standard_normal((N, 3)).astype(np.float32)}
    ids = [str(uuid.UUID(int=i * 104729 + 5)) for i in range(N)]
    for i, uid in enumerate(ids):
        store.put_object("Docs", "", uid, {"title": f"doc {i}", "rank": float(i)},
                         {name: (SINGLE, _bytes(v[i])) for name, v in vecs.items()})
    if dropped:
        store.drop_vector_index("Docs", "old")
    return ids, vecs


def test_describe_and_read_every_vector_space(weaviate_emu: WeaviateEmulator) -> None:
    ids, vecs = legacy_with_named(weaviate_emu)
    with connect(weaviate_emu.uri("Docs")) as w:
        info = w.describe()
        assert info is not None and info.count == N
        assert info.named_vectors == {"default": {"dimension": 6, "metric": "dot"},
                                      "img": {"dimension": 4, "metric": "cosine"},
                                      "old": {"dimension": 3, "metric": "euclidean"}}
        assert info.vector_name == "default" and set(info.extra_vectors) == {"img", "old"}
        batch, _ = w.scan(None, 100)
        assert len(batch) == N and not batch.rejected
        got = batch.dense_vectors()
        i = batch.ids.index(ids[3])
        assert np.array_equal(got["default"][i], vecs[""][3]) and np.array_equal(got["img"][i], vecs["img"][3])
        one = w.fetch([ids[7]]).dense_vectors()
        assert np.array_equal(one["default"][0], vecs[""][7]) and np.array_equal(one["old"][0], vecs["old"][7])


def test_legacy_and_named_vectors_all_migrate(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    ids, vecs = legacy_with_named(weaviate_emu)
    target = f"qdrant://{tmp_path}/q?collection=c"
    m = Migration.create(weaviate_emu.uri("Docs"), target, state=str(tmp_path / "state.db"), migration_id="legacy",
                         batch_size=15, sample_rate=1.0, retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    status = m.status()
    assert status.verification == "passed" and status.records_rejected == 0 and status.records_written == N
    with connect(target) as q:
        got = q.fetch([ids[11]]).dense_vectors()
        assert set(got) == {"default", "img", "old"}
        assert np.array_equal(got["default"][0], vecs[""][11]) and np.array_equal(got["old"][0], vecs["old"][11])


def test_a_dropped_vector_index_is_named_by_the_plan(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    ids, vecs = legacy_with_named(weaviate_emu, dropped=True)
    with connect(weaviate_emu.uri("Docs")) as w:
        info = w.describe()  # no AttributeError on the index-less vector
        assert info is not None and set(info.named_vectors) == {"default", "img"}
        assert "old" in info.skipped_vectors
    target = weaviate_emu.uri("Copy")
    m = Migration.create(weaviate_emu.uri("Docs"), target, state=str(tmp_path / "state.db"), migration_id="dropped",
                         batch_size=15, sample_rate=1.0, retry_initial_s=0.01)
    found = [w for w in m.plan.warnings if w.field == "vector.old"]
    assert found and "index was dropped" in found[0].message and found[0].policy == "not copied"
    status = m.run()
    assert status.state == "completed", str(status)
    assert m.status().verification == "passed" and m.status().records_rejected == 0
    with connect(target) as w:
        info = w.describe()
        assert info is not None and set(info.named_vectors) == {"default", "img"}
        got = w.fetch([ids[2]]).dense_vectors()
        assert np.array_equal(got["img"][0], vecs["img"][2]) and np.array_equal(got["default"][0], vecs[""][2])
