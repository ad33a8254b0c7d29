"""Partitions cover a source exactly: every record of a full scan is read by exactly one
partition's own scan (``scan_partition`` from a None cursor to the end), in small pages so
each partition's cursor is resumed many times. No Dask needed: the contract itself."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import numpy as np
import pytest
from emulators.pinecone_emulator import PineconeEmulator
from engines.postgres import PgServer

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.connectors.base import Connector
from vmkit.connectors.partitions import Partition


def _keys(conn: Connector, parts: list[Partition] | None, page: int = 37) -> Counter[tuple[str, Any]]:
    seen: Counter[tuple[str, Any]] = Counter()
    for part in parts or []:
        cursor = None
        while True:
            batch, cursor = conn.scan_partition(part, cursor, page)
            seen.update((batch.namespace, rid) for rid in batch.ids)
            if cursor is None:
                break
    return seen


def _all(conn: Connector) -> Counter[tuple[str, Any]]:
    seen: Counter[tuple[str, Any]] = Counter()
    cursor = None
    while True:
        batch, cursor = conn.scan(cursor, 500)
        seen.update((batch.namespace, rid) for rid in batch.ids)
        if cursor is None:
            return seen


def _check(conn: Connector, n: int) -> list[Partition]:
    parts = conn.partitions(n)
    assert parts is not None and len(parts) >= 2
    assert len({p.key for p in parts}) == len(parts)
    got = _keys(conn, parts)
    assert max(got.values()) == 1  # no record read twice
    assert got == _all(conn)  # and none left out
    return parts


def _loaded(uri: str, n: int, tmp_path: Any, batch_size: int = 100) -> Connector:
    """``uri`` filled with ``n`` synthetic records by a migration, opened."""
    assert Migration.create(f"synthetic://s?n={n}&dim=4", uri, state=tmp_path / "load.db",
                            batch_size=batch_size).run().state == "completed"
    return connect(uri)


def test_synthetic_ranges_cover() -> None:
    parts = _check(connect("synthetic://s?n=1000&dim=4"), 7)
    assert len(parts) == 7 and sum(p.estimated for p in parts) == 1000


@pytest.mark.parametrize("pk", ["text", "bigint"])
def test_pgvector_key_ranges_cover(pg_server: PgServer, pg_db: str, tmp_path: Any, pk: str) -> None:
    uri = pg_server.uri(pg_db, "src", pk=pk)
    assert Migration.create("synthetic://s?n=900&dim=4", uri, state=tmp_path / "s.db").run().state == "completed"
    with connect(uri) as conn:
        _check(conn, 6)


def test_pinecone_namespaces_and_prefixes_cover(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("src", 4, "cosine")
    rng = np.random.default_rng(1)
    for ns, n in (("a", 60), ("b", 40), ("", 30)):
        pinecone_emu.seed("src", [(f"{ns}-{i}", rng.standard_normal(4), None, None) for i in range(n)], namespace=ns)
    pinecone_emu.seed("src", [(str(uuid.UUID(bytes=rng.bytes(16))), rng.standard_normal(4), None, None)
                              for _ in range(400)], namespace="uuids")
    with connect("pinecone://src") as conn:
        parts = _check(conn, 8)
        assert sum(1 for p in parts if p.namespace == "uuids") > 1  # split by id prefix


def test_weaviate_uuid_ranges_cover(weaviate_emu: Any) -> None:
    pytest.importorskip("weaviate")
    from copying import fill, rich_records

    rng = np.random.default_rng(2)
    uri = weaviate_emu.uri("Docs")
    fill(uri, "cosine", [rich_records([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(500)])])
    with connect(uri) as conn:
        parts = _check(conn, 5)
        assert len(parts) == 5 and parts[0].lower is None and parts[-1].upper is None


def test_plan_hash_covers_partitions(tmp_path: Any) -> None:
    """A plan without partitions keeps its hash; split otherwise, the hash changes."""
    from vmkit import plan

    with connect("synthetic://s?n=100&dim=4") as src, connect("memory://t") as dst:
        plain = plan(src, dst, sample=0)
        split4 = plan(src, dst, sample=0, partitions=4)
        split5 = plan(src, dst, sample=0, partitions=5)
    assert plain.partitions == [] and len(split4.partitions) == 4
    assert len({plain.hash, split4.hash, split5.hash}) == 3
    assert "partitions: 4 (~25..25 records each)" in str(split4)


@pytest.mark.parametrize("kind", ["int", "uuid", "mixed"])
def test_qdrant_id_ranges_cover(tmp_path: Any, kind: str) -> None:
    """Cuts at quantiles of Qdrant's own random sample, read with scroll offsets in Qdrant's id
    order (ints, then UUIDs); a sample holding both kinds gives one partition."""
    pytest.importorskip("qdrant_client")
    from vmkit.connectors.base import TargetSpec
    from vmkit.core.records import RecordBatch

    n = 1500
    ids: list[Any] = {"int": [i * 7 + 3 for i in range(n)],
                      "uuid": [str(uuid.UUID(int=i * 2654435761 % (1 << 128))) for i in range(1, n + 1)],
                      "mixed": [i if i % 2 else str(uuid.UUID(int=i + 1)) for i in range(n)]}[kind]
    conn = connect(f"qdrant://{tmp_path}/q?collection=c")
    conn.create(TargetSpec("c", 4, "cosine"))
    conn.upsert(RecordBatch(ids, np.random.default_rng(3).standard_normal((n, 4)), [{"i": i} for i in range(n)]))
    if kind == "mixed":
        assert conn.partitions(6) is None
        return
    parts = _check(conn, 6)
    assert 4 <= len(parts) <= 6 and parts[0].lower is None and parts[-1].upper is None


@pytest.mark.parametrize("pk", ["string", "int"])
def test_lancedb_id_ranges_cover(tmp_path: Any, pk: str) -> None:
    pytest.importorskip("lancedb")
    with _loaded(f"lancedb://{tmp_path}/db?table=src&pk={pk}", 900, tmp_path) as conn:
        parts = _check(conn, 6)
        assert len(parts) == 6 and all(p.estimated == 150 for p in parts)


@pytest.mark.parametrize("pk,sample", [("varchar", None), ("int64", None), ("int64", 16)])
def test_milvus_key_ranges_cover(tmp_path: Any, pk: str, sample: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Milvus Lite (Dask refuses it, one process only; the ranges are the server's too): the
    default partition and a second one, split into key ranges; varchar keys with quotes,
    backslashes and non-ASCII, which the range filters must escape. With a small sample (the
    stride doubling many times) the ranges still cover every key."""
    pytest.importorskip("milvus_lite")
    from pymilvus import DataType, MilvusClient

    from vmkit.connectors.milvus import partitions as milvus_partitions

    if sample:
        monkeypatch.setattr(milvus_partitions, "_SAMPLE", sample)

    path = str(tmp_path / "m.db")
    client = MilvusClient(path)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.INT64 if pk == "int64" else DataType.VARCHAR, is_primary=True,
                     **({} if pk == "int64" else {"max_length": 64}))
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection("c", schema=schema, index_params=index)
    client.create_partition("c", "p1")
    odd = ['a"q', "c\\d", "z'y", "é ü", "🙂", "A", "0"]
    keys: list[Any] = list(range(0, 1200, 3)) if pk == "int64" else [f"k{i:05d}" for i in range(400)] + odd
    rows = [{"pk": k, "emb": [1.0, i % 7, 1.0, 1.0]} for i, k in enumerate(keys)]
    client.insert("c", rows[:300])
    client.insert("c", rows[300:], partition_name="p1")
    client.close()
    with connect(f"milvus://{path}?collection=c") as conn:
        parts = _check(conn, 6)
        assert {p.namespace for p in parts} == {"", "p1"}
        assert sum(1 for p in parts if p.namespace == "") > 1  # the bigger partition split by key


def test_chroma_position_ranges_cover(tmp_path: Any) -> None:
    pytest.importorskip("chromadb")
    with _loaded(f"chroma://{tmp_path}/db?collection=src", 700, tmp_path) as conn:
        parts = _check(conn, 6)
        assert len(parts) == 6 and parts[-1].upper is None  # the last range open: later records land there


def test_parquet_part_runs_cover(tmp_path: Any) -> None:
    """A Parquet directory's parts (written in batches of uneven size, so the runs are cut by
    records, not by files), in runs of whole parts."""
    with _loaded(f"parquet://{tmp_path}/pq", 1000, tmp_path, batch_size=90) as conn:
        parts = _check(conn, 4)
        assert len(parts) == 4 and sum(p.estimated for p in parts) == 1000
        assert max(p.estimated for p in parts) <= 1000 // 4 + 90  # within one part file of even
