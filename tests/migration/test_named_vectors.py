"""Records with several named dense vectors (Weaviate / Qdrant named vectors): every vector moves,
each under its name, and verification checks each one."""

from __future__ import annotations

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect
from vmkit.core.records import RecordBatch
from vmkit.planning.planner import plan

N, TITLE, BODY = 240, 8, 5
SPEC = TargetSpec("src", TITLE, "cosine", vector_name="title",
                  extra_vectors={"body": {"dimension": BODY, "metric": "dot"}})


def _source(name: str = "src", rows: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {"title": rng.standard_normal((rows, TITLE)).astype(np.float32),
               "body": rng.standard_normal((rows, BODY)).astype(np.float32)}
    conn = connect(f"memory://{name}")
    conn.create(SPEC)
    conn.upsert(RecordBatch(list(range(rows)), vectors["title"], [{"i": i} for i in range(rows)],
                            named={"body": vectors["body"]}, vector_name="title"))
    return vectors


def _run(source: str, target: str, tmp_path, mid: str = "nv", **opts):
    m = Migration.create(source, target, migration_id=mid, state=tmp_path / f"{mid}.db", batch_size=100, **opts)
    return m, m.run()


def test_batch_columns_follow_take_and_concat():
    b = RecordBatch([1, 2, 3], np.ones((3, 2)), [{}, {}, {}], named={"b": np.arange(9).reshape(3, 3)},
                    vector_name="a")
    part = b.take([2, 0])
    assert part.vector_name == "a" and part.named["b"].tolist() == [[6, 7, 8], [0, 1, 2]]
    joined = RecordBatch.concat([part, b.take([1])])
    assert joined.named["b"][:, 0].tolist() == [6, 0, 3] and joined.floats_per_record == 5
    with pytest.raises(ValueError, match="named vector 'b'"):
        RecordBatch([1], np.ones((1, 2)), [{}], named={"b": np.ones((2, 3))})


def test_both_vectors_reach_a_memory_target_and_verify(tmp_path):
    want = _source()
    m, st = _run("memory://src", "memory://dst", tmp_path)
    assert st.state == "completed" and st.verification == "passed", str(st)
    assert m.plan.target.vector_spaces() == {"title": (TITLE, "cosine"), "body": (BODY, "dot")}
    assert "named vectors: title (8, cosine), body (5, dot)" in str(m.plan)
    got = connect("memory://dst").fetch([0, 17])
    assert got.vector_name == "title"
    assert np.array_equal(got.vectors, want["title"][[0, 17]])
    assert np.array_equal(got.named["body"], want["body"][[0, 17]])


def test_verification_catches_a_changed_second_vector(tmp_path):
    _source()
    m, st = _run("memory://src", "memory://dst", tmp_path)
    assert st.verification == "passed"
    dst = connect("memory://dst")
    rec = dst.fetch([42])
    rec.named["body"][0, 2] += np.float32(0.5)
    dst.upsert(rec)
    result = m.verify()
    assert [k for k, _ in result.mismatched] == [("", 42)]
    assert "named vector 'body'" in result.mismatched[0][1]


def test_bad_second_vector_is_rejected_by_name(tmp_path):
    _source()
    src = connect("memory://src")
    rec = src.fetch([7])
    rec.named["body"][0, 0] = np.nan
    src.upsert(rec)
    m, st = _run("memory://src", "memory://dst", tmp_path)
    assert st.state == "completed" and st.verification == "passed", str(st)
    rows = m.store.query("SELECT record_id, field, reason FROM rejections")
    assert [(r[0], r[1]) for r in rows] == [("7", "vector.body")] and "NaN" in rows[0][2]
    assert st.records_read == N == st.records_written + st.records_rejected


def test_target_with_one_vector_per_record_is_warned_and_gets_the_first(tmp_path):
    """sink:// (like Pinecone and SochDB) stores one dense vector a record: the plan says which
    vectors stay behind, and what is written and verified is the first one."""
    _source()
    with connect("memory://src") as src, connect("sink://one") as dst:
        p = plan(src, dst)
    assert p.target.extra_vectors == {}
    assert any("named vectors ['body'] are not copied" in w.message for w in p.warnings), [str(w) for w in p.warnings]
    m, st = _run("memory://src", "sink://one", tmp_path, mid="one", sample_rate=0.0)
    assert st.state == "completed" and st.verification == "passed" and st.records_written == N, str(st)


def test_qdrant_named_vectors_round_trip(tmp_path):
    """memory -> Qdrant (created with both named vectors) -> memory, verified both times."""
    want = _source()
    qdrant = f"qdrant://{tmp_path}/q?collection=docs"
    m1, st1 = _run("memory://src", qdrant, tmp_path, mid="to-q")
    assert st1.verification == "passed", str(st1)
    with connect(qdrant) as q:
        info = q.describe()  # which vector a reader presents first does not matter: names do
        spaces = {info.vector_name: (info.dimension, info.metric),
                  **{n: (v["dimension"], v["metric"]) for n, v in info.extra_vectors.items()}}
        assert spaces == {"title": (TITLE, "cosine"), "body": (BODY, "dot")}
        got = q.fetch([5]).dense_vectors()
        unit = want["title"][5] / np.linalg.norm(want["title"][5])
        # cosine: unit vectors, though the embedded engine returns the raw ones after a reopen
        assert np.allclose(got["title"][0] / np.linalg.norm(got["title"][0]), unit, atol=1e-6)
        assert np.array_equal(got["body"][0], want["body"][5])
    m1.close()
    m2, st2 = _run(qdrant, "memory://back", tmp_path, mid="from-q")
    assert st2.verification == "passed" and st2.records_written == N, str(st2)
    back = connect("memory://back").fetch([5]).dense_vectors()
    assert np.array_equal(back["body"][0], want["body"][5])
    m2.close()


def test_qdrant_point_missing_a_named_vector_is_rejected_not_dropped(tmp_path):
    from qdrant_client import QdrantClient, models

    path = tmp_path / "partial"
    client = QdrantClient(path=str(path))
    client.create_collection("docs", vectors_config={
        "a": models.VectorParams(size=3, distance=models.Distance.DOT),
        "b": models.VectorParams(size=2, distance=models.Distance.DOT)})
    client.upsert("docs", points=[
        models.PointStruct(id=1, vector={"a": [1, 2, 3], "b": [1, 0]}, payload={"k": 1}),
        models.PointStruct(id=2, vector={"a": [3, 2, 1]}, payload={"k": 2})])
    client.close()
    m, st = _run(f"qdrant://{path}?collection=docs", "memory://dst", tmp_path, mid="partial")
    assert st.records_read == 2 and st.records_written == 1 and st.records_rejected == 1, str(st)
    rows = m.store.query("SELECT record_id, field, reason FROM rejections")
    assert rows[0][:2] == ("2", "vector.b") and "no vector 'b'" in rows[0][2]
    m.close()
