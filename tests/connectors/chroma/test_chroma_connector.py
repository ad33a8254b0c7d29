"""The Chroma connector against the embedded engine: metrics, documents, paging that resumes in
another process and refuses a moved order, writes past the max batch size, the bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.errors import ConfigError, PlanError, SecretInURI, TerminalError
from vmkit.core.records import RecordBatch

pytest.importorskip("chromadb")


def records(n: int, dim: int = 4, start: int = 0) -> RecordBatch:
    rng = np.random.default_rng(start)
    return RecordBatch([f"id-{i:05d}" for i in range(start, start + n)], rng.standard_normal((n, dim)).astype(np.float32),
                       [{"i": i, "document": f"doc {i}"} if i % 2 else {"i": i} for i in range(start, start + n)])


def made(tmp_path: Path, metric: str = "dot", n: int = 0, name: str = "coll"):
    conn = connect(f"chroma://{tmp_path}/db?collection={name}")
    conn.create(TargetSpec(name, 4, metric))
    if n:
        conn.upsert(records(n))
    return conn


@pytest.mark.parametrize("metric,space", [("cosine", "cosine"), ("euclidean", "l2"), ("dot", "ip")])
def test_metric_is_the_collection_space(tmp_path: Path, metric: str, space: str) -> None:
    conn = made(tmp_path, metric)
    assert conn._collection().configuration["hnsw"]["space"] == space
    info = conn.describe()
    assert (info.metric, info.dimension, info.count) == (metric, 4, 0)


def test_document_key_travels_as_the_chroma_document(tmp_path: Path) -> None:
    conn = made(tmp_path, n=4)
    raw = conn._collection().get(ids=["id-00001", "id-00002"], include=["documents", "metadatas"])
    assert raw["documents"] == ["doc 1", None] and raw["metadatas"] == [{"i": 1}, {"i": 2}]
    assert conn.fetch(["id-00001"]).metadata == [{"i": 1, "document": "doc 1"}]
    conn._collection().upsert(ids=["clash"], embeddings=np.ones((1, 4), np.float32), documents=["d"],
                              metadatas=[{"document": "m"}])
    got = conn.fetch(["clash"])
    assert len(got) == 0 and got.rejected[0].field == "metadata.document"


def test_scan_resumes_in_a_new_process_without_skip_or_repeat(tmp_path: Path) -> None:
    conn = made(tmp_path, n=250)
    conn.close()
    child = ("import sys; from vmkit.connectors import connect; c = connect(sys.argv[1]); "
             "b, cur = c.scan(None, 100); b2, cur = c.scan(cur, 60); print(cur); print(','.join(b.ids + b2.ids))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([sys.executable, "-c", child, f"chroma://{tmp_path}/db?collection=coll"],
                         capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    cursor, first = out[0], out[1].split(",")
    conn = connect(f"chroma://{tmp_path}/db?collection=coll")
    rest, cur = [], cursor
    while cur is not None:
        b, cur = conn.scan(cur, 70)
        rest += b.ids
    assert first + rest == [f"id-{i:05d}" for i in range(250)]  # insertion order, each once


def test_scan_refuses_a_cursor_whose_position_moved(tmp_path: Path) -> None:
    conn = made(tmp_path, n=30)
    b, cur = conn.scan(None, 10)
    conn.delete(["id-00003"])  # everything after it moves one place up
    with pytest.raises(TerminalError, match="changed during the read"):
        conn.scan(cur, 10)


def test_upsert_past_the_max_batch_size(tmp_path: Path) -> None:
    conn = made(tmp_path)
    big = records(6000)
    conn.upsert(big)
    assert conn.count() == 6000
    assert np.array_equal(conn.fetch(["id-05999"]).vectors, big.vectors[-1:])


def test_records_without_embeddings_are_a_plan_error_and_rejections(tmp_path: Path, monkeypatch) -> None:
    conn = made(tmp_path, n=3)
    col = conn._collection()
    real = col.get

    def without_embeddings(*args, **kwargs):  # what a documents-only collection hands back
        got = dict(real(*args, **kwargs))
        got["embeddings"] = None
        return got

    monkeypatch.setattr(col, "get", without_embeddings)
    with pytest.raises(PlanError, match=r"record 'id-00000' has no embedding \(field 'embeddings'\)"):
        conn.describe()
    b, _ = conn.scan(None, 10)
    assert len(b) == 0 and [(r.record_id, r.field) for r in b.rejected] == [
        ("id-00000", "vector"), ("id-00001", "vector"), ("id-00002", "vector")]


def test_uris(tmp_path: Path, monkeypatch) -> None:
    conn = connect("chroma://chroma.example:8123/my-coll")
    assert (conn.host, conn.port, conn.collection) == ("chroma.example", 8123, "my-coll")
    with pytest.raises(SecretInURI):
        connect("chroma://chroma.example:8000/my-coll?token=abc")
    with pytest.raises(ConfigError, match="3-512 characters"):
        connect(f"chroma://{tmp_path}/db?collection=c")
    assert connect(f"chroma://{tmp_path}/db?collection=none").describe() is None


def test_drops_only_what_vmkit_made(tmp_path: Path) -> None:
    conn = made(tmp_path)
    conn._open().create_collection("theirs", embedding_function=None)
    with pytest.raises(TerminalError, match="not made by vmkit"):
        connect(f"chroma://{tmp_path}/db?collection=theirs").drop()
    conn.drop()
    assert conn.describe() is None


def test_floats_chroma_would_change_come_back_exact(tmp_path: Path) -> None:
    conn = made(tmp_path)
    vals = [i / 7 for i in range(700)]
    conn.upsert(RecordBatch([f"f{i}" for i in range(700)], np.ones((700, 4), np.float32),
                            [{"f": v, "l": [v, 0.5]} for v in vals]))
    got = conn.fetch([f"f{i}" for i in range(700)])
    assert {(r, m["f"], m["l"][0]) for r, m in zip(got.ids, got.metadata)} == {(f"f{i}", v, v) for i, v in enumerate(vals)}
    assert all(set(m) == {"f", "l"} for m in got.metadata)
    raw = conn._collection().get(ids=["f632"], include=["metadatas"])["metadatas"][0]
    assert raw["f"] != vals[632] and raw["_vmkit_f64:f"] == repr(vals[632])  # the engine's value, and the exact one
    conn._collection().update(ids=["f632"], metadatas=[{"f": 5.0}])  # changed outside vmkit: the copy is stale
    assert conn.fetch(["f632"]).metadata[0]["f"] == 5.0 and "_vmkit_f64:f" in conn.fetch(["f632"]).metadata[0]


def test_sample_spreads_over_the_whole_collection(tmp_path: Path) -> None:
    conn = made(tmp_path, n=3000)
    got = [i for b in conn.sample(200, seed=3) for i in b.ids]
    assert len(got) == len(set(got)) == 200
    positions = sorted(int(i.split("-")[1]) for i in got)
    assert positions[0] < 1000 and positions[-1] >= 2000  # not the first page
