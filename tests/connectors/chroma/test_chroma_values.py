"""What Chroma 1.5.9 itself keeps, checked against the engine: the facts behind the connector's
Capabilities (vmkit/connectors/chroma/connector.py) and its float note (floats.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vmkit.connectors.chroma.floats import chroma_stores
from vmkit.connectors.chroma.rows import to_columns
from vmkit.core.errors import InvalidData
from vmkit.core.records import RecordBatch

chromadb = pytest.importorskip("chromadb")


@pytest.fixture
def col(tmp_path: Path):
    from chromadb.config import Settings

    client = chromadb.PersistentClient(str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False))
    return client.create_collection("values", embedding_function=None)


def put(col, rid: str, meta: dict) -> dict | None:
    col.upsert(ids=[rid], embeddings=np.ones((1, 2), np.float32), metadatas=[meta])
    return col.get(ids=[rid], include=["metadatas"])["metadatas"][0]


def test_kept_exactly(col) -> None:
    for i, meta in enumerate([{"b": True}, {"i": 2**63 - 1}, {"i": -(2**63)}, {"big": 2**53 + 1},
                              {"s": "日本 🚀"}, {"ls": ["a", "b"]}, {"li": [2**53 + 1, 3]}, {"lb": [True, False]},
                              {"lf": [0.5, 0.25]}, {"ключ": "значение"}]):
        got = put(col, f"r{i}", meta)
        assert got == meta and all(type(got[k]) is type(v) for k, v in meta.items())


def test_refused_or_changed(col) -> None:
    assert put(col, "null", {"x": None}) is None  # a None value deletes the key: metadata_null=False
    assert isinstance(put(col, "u64", {"x": 2**64 - 1})["x"], float)  # past int64: silently a float
    for bad in [{"x": {"a": 1}}, {"x": []}, {"x": [1, "a"]}, {"x": [None]}, {"#x": 1}, {"$x": 1}, {"": 1}]:
        with pytest.raises(Exception):  # noqa: B017 - Chroma raises ValueError or InvalidArgumentError
            put(col, "bad", bad)


def test_mixed_types_under_one_key_are_fine(col) -> None:
    assert put(col, "a", {"k": 1}) == {"k": 1} and put(col, "b", {"k": "s"}) == {"k": "s"}


def test_float_prediction_matches_the_engine(col) -> None:
    rng = np.random.default_rng(5)
    vals = [i / 7 for i in range(2000)] + [float(v) for v in rng.standard_normal(2000) * 10.0 ** rng.integers(-40, 40, 2000)]
    ids = [str(i) for i in range(len(vals))]
    col.upsert(ids=ids, embeddings=np.ones((len(vals), 2), np.float32), metadatas=[{"f": v} for v in vals])
    got = col.get(ids=ids, include=["metadatas"])
    stored = {rid: m["f"] for rid, m in zip(got["ids"], got["metadatas"])}
    predicted = [chroma_stores(v) for v in vals]
    assert [stored[r] for r in ids] == predicted
    assert sum(p != v for p, v in zip(predicted, vals)) > 100  # the loss is real, and predicted


def test_to_columns_names_the_record_and_field_chroma_would_refuse() -> None:
    for meta, field in [({"x": []}, "metadata.x"), ({"y": 2**64 - 1}, "metadata.y"), ({"z": {"a": 1}}, "metadata.z"),
                        ({"w": [1, "a"]}, "metadata.w"), ({"n": float("nan")}, "metadata.n")]:
        with pytest.raises(InvalidData, match=rf"record 'r1' \[{field}\]"):
            to_columns(RecordBatch(["r1"], np.ones((1, 2), np.float32), [meta]))


def test_cosine_vectors_come_back_changed_but_equal_once_normalized(tmp_path: Path) -> None:
    from chromadb.config import Settings

    client = chromadb.PersistentClient(str(tmp_path / "cos"), settings=Settings(anonymized_telemetry=False))
    rng = np.random.default_rng(1)
    v = rng.standard_normal((1500, 16)).astype(np.float32)  # past hnsw sync_threshold (1000)
    ids = [f"r{i}" for i in range(1500)]
    for space in ("cosine", "l2", "ip"):
        c = client.create_collection(f"s-{space}", embedding_function=None, configuration={"hnsw": {"space": space}})
        c.upsert(ids=ids, embeddings=v)
        got = c.get(ids=ids, include=["embeddings"])
        back = np.asarray(got["embeddings"], np.float32)[np.argsort([int(r[1:]) for r in got["ids"]])]
        if space == "cosine":
            assert not np.array_equal(back, v)  # normalizes_cosine=True
            unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
            assert np.abs(unit(back) - unit(v)).max() < 1e-6
        else:
            assert np.array_equal(back, v)
