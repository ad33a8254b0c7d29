"""The LanceDB connector against the embedded engine: the table vmkit makes and what it keeps
exactly, tables made by others (float16 and named vectors, typed and struct columns), paging by
id that resumes in another process, compaction after a load, and the bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.errors import ConfigError, PlanError, TerminalError
from vmkit.core.records import RecordBatch

lancedb = pytest.importorskip("lancedb")
pa = pytest.importorskip("pyarrow")

ODD_META = [{"nested": {"a": [1, {"b": None}]}, "null": None, "big": 2**64 + 5, "huge": 2**63 - 1,
             "mixed": [1, "1", 1.5, True, None], "f": 632 / 7, "empty": [], "ключ": "🚀"}, {"k": "s"}, {}]


def test_vmkit_table_layout_and_exact_round_trip(tmp_path: Path) -> None:
    conn = connect(f"lancedb://{tmp_path}/db?table=docs")
    conn.create(TargetSpec("docs", 4, "cosine", vector_name="default",
                           extra_vectors={"title": {"dimension": 2, "metric": "cosine"}}))
    rng = np.random.default_rng(0)
    batch = RecordBatch(["b", "a'quote", "日本"], rng.standard_normal((3, 4)).astype(np.float32), ODD_META,
                        named={"title": rng.standard_normal((3, 2)).astype(np.float32)}, vector_name="default")
    conn.upsert(batch)
    conn.upsert(batch)  # merge_insert on id: idempotent
    schema = lancedb.connect(str(tmp_path / "db")).open_table("docs").schema
    assert [(f.name, str(f.type)) for f in schema] == [
        ("id", "string"), ("vector", "fixed_size_list<item: float>[4]"),
        ("title", "fixed_size_list<item: float>[2]"), ("metadata", "large_string")]
    info = conn.describe()
    assert (info.dimension, info.metric, info.count, info.vector_name) == (4, "cosine", 3, "default")
    assert info.extra_vectors == {"title": {"dimension": 2, "metric": "cosine"}}
    got = conn.fetch(["a'quote", "b", "日本"])
    order = [batch.ids.index(i) for i in got.ids]
    assert got.metadata == [ODD_META[i] for i in order]
    assert np.array_equal(got.vectors, batch.vectors[order]) and np.array_equal(got.named["title"], batch.named["title"][order])


def test_int_ids_with_pk_int(tmp_path: Path) -> None:
    conn = connect(f"lancedb://{tmp_path}/db?table=n&pk=int")
    assert conn.capabilities.id_kinds == frozenset({"uint"})
    conn.create(TargetSpec("n", 2, "dot"))
    ids = [0, 7, 2**63, 2**64 - 1]
    conn.upsert(RecordBatch(ids, np.ones((4, 2), np.float32), [{}] * 4))
    b, cur = conn.scan(None, 10)
    assert b.ids == ids and cur is None


def test_scan_by_id_resumes_in_a_new_process(tmp_path: Path) -> None:
    conn = connect(f"lancedb://{tmp_path}/db?table=t")
    conn.create(TargetSpec("t", 2, "dot"))
    ids = [f"r{i:04d}" for i in range(500)][::-1]
    for i in range(0, 500, 100):  # several fragments: LanceDB's row order is not id order
        conn.upsert(RecordBatch(ids[i:i + 100], np.ones((100, 2), np.float32), [{}] * 100))
    conn.close()
    child = ("import sys; from vmkit.connectors import connect; c = connect(sys.argv[1]); "
             "b, cur = c.scan(None, 130); print(cur); print(','.join(b.ids))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([sys.executable, "-c", child, f"lancedb://{tmp_path}/db?table=t"],
                         capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    seen, cur = out[1].split(","), out[0]
    conn = connect(f"lancedb://{tmp_path}/db?table=t")
    while cur is not None:
        b, cur = conn.scan(cur, 90)
        seen += b.ids
    assert seen == sorted(ids)  # every id once, in id order


def test_finish_load_compacts_only_tables_vmkit_made(tmp_path: Path) -> None:
    conn = connect(f"lancedb://{tmp_path}/db?table=t")
    conn.create(TargetSpec("t", 2, "dot"))
    for i in range(5):
        conn.upsert(RecordBatch([f"r{i}"], np.ones((1, 2), np.float32), [{}]))
    tbl = lancedb.connect(str(tmp_path / "db")).open_table("t")
    assert tbl.stats()["fragment_stats"]["num_fragments"] == 5
    conn.finish_load()
    conn.finish_load()  # idempotent
    tbl = lancedb.connect(str(tmp_path / "db")).open_table("t")
    assert tbl.stats()["fragment_stats"]["num_fragments"] == 1 and tbl.count_rows() == 5
    other = lancedb.connect(str(tmp_path / "db")).create_table("o", data=pa.table({
        "id": ["a"], "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0], pa.float32()), 2)}))
    version = other.version
    connect(f"lancedb://{tmp_path}/db?table=o").finish_load()
    assert lancedb.connect(str(tmp_path / "db")).open_table("o").version == version


def test_a_table_made_elsewhere_is_read_as_it_is(tmp_path: Path) -> None:
    h = np.array([[0.1, 65504.0], [-2.5, 1e-4]], np.float16)
    data = pa.table({
        "id": ["x", "y"],
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(h.reshape(-1), pa.float16()), 2),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array([0.5, 0.25, 1.0, 2.0, 3.0, 4.0], pa.float64()), 3),
        "price": pa.array([1.5, None]), "info": pa.array([{"a": 1, "b": "z"}, {"a": 2, "b": None}]),
    })
    lancedb.connect(str(tmp_path / "db")).create_table("ext", data=data)
    conn = connect(f"lancedb://{tmp_path}/db?table=ext")
    info = conn.describe()
    assert (info.dimension, info.vector_name, info.extra_vectors) == (3, "vector", {"emb": {"dimension": 2, "metric": "euclidean"}})
    b, _ = conn.scan(None, 10)
    assert b.ids == ["x", "y"] and b.vector_name == "vector"
    assert np.array_equal(b.named["emb"], h.astype(np.float32))  # float16 widened exactly
    assert b.metadata == [{"price": 1.5, "info": {"a": 1, "b": "z"}}, {"price": None, "info": {"a": 2, "b": None}}]


def test_float64_values_float32_cannot_hold_are_rejected_by_name(tmp_path: Path) -> None:
    data = pa.table({"id": ["ok", "bad"], "vector": pa.FixedSizeListArray.from_arrays(
        pa.array([0.5, 0.25, 0.1, 0.5], pa.float64()), 2)})
    lancedb.connect(str(tmp_path / "db")).create_table("f64", data=data)
    b, _ = connect(f"lancedb://{tmp_path}/db?table=f64").scan(None, 10)
    assert b.ids == ["ok"] and [(r.record_id, r.field) for r in b.rejected] == [("bad", "vector")]


def test_a_table_without_a_vector_column_is_a_plan_error(tmp_path: Path) -> None:
    lancedb.connect(str(tmp_path / "db")).create_table("plain", data=pa.table({"id": ["a"], "n": [1]}))
    with pytest.raises(PlanError, match="lancedb table plain has no vector column"):
        connect(f"lancedb://{tmp_path}/db?table=plain").describe()
    with pytest.raises(TerminalError, match="not made by vmkit"):
        connect(f"lancedb://{tmp_path}/db?table=plain").drop()


def test_uris(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        connect(f"lancedb://{tmp_path}/db")
    with pytest.raises(ConfigError):
        connect(f"lancedb://{tmp_path}/db?table=t&pk=float")
    assert connect(f"lancedb://{tmp_path}/db?table=none").describe() is None


def test_repeated_ids_in_a_foreign_table_stay_on_one_page(tmp_path: Path) -> None:
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(8, dtype=np.float32)), 2)
    lancedb.connect(str(tmp_path / "db")).create_table("dup", data=pa.table({"id": ["a", "b", "b", "c"], "vector": vec}))
    conn, seen, cur = connect(f"lancedb://{tmp_path}/db?table=dup"), [], None
    while True:
        b, cur = conn.scan(cur, 2)
        seen += b.ids
        if cur is None:
            break
    assert seen == ["a", "b", "b", "c"]


def test_writes_stay_idempotent_across_appends_retries_and_new_processes(tmp_path: Path) -> None:
    uri = f"lancedb://{tmp_path}/db?table=t"
    conn = connect(uri)
    conn.create(TargetSpec("t", 2, "dot"))

    def rows(keys: range) -> RecordBatch:
        return RecordBatch([f"r{i}" for i in keys], np.full((len(keys), 2), 1.0, np.float32), [{"i": i} for i in keys])

    conn.upsert(rows(range(0, 10)))
    conn.upsert(rows(range(5, 15)))  # overlaps the first: merged, not appended
    tbl = conn._open_table()
    real_add = tbl.add

    def add_then_fail(data):  # the append commits, then the acknowledgement is lost
        real_add(data)
        raise OSError("connection reset")

    tbl.add = add_then_fail
    with pytest.raises(Exception):  # noqa: B017 - TransientError: the runner retries it
        conn.upsert(rows(range(15, 20)))
    tbl.add = real_add
    conn.upsert(rows(range(15, 20)))  # the retry
    conn.upsert(RecordBatch(["r1", "r1"], np.array([[1, 1], [2, 2]], np.float32), [{"v": 1}, {"v": 2}]))
    again = connect(uri)  # another process's view: no memory of what was written
    again.upsert(rows(range(18, 25)))
    assert again.count() == 25
    got = again.fetch(["r1"])
    assert got.metadata == [{"v": 2}] and got.vectors.tolist() == [[2.0, 2.0]]  # the last of a repeated id wins
