"""layout=pinecone writes what Pinecone's bulk import reads. The reader here is written from
Pinecone's documentation alone, with plain pyarrow (not the connector):

- docs.pinecone.io/guides/index-data/import-data ("Prepare your data"): one sub-directory per
  namespace, ``__default__`` for the default namespace; columns ``id`` STRING (required),
  ``values`` LIST<FLOAT> (required), ``sparse_values`` STRUCT of ``indices`` LIST<UINT32> and
  ``values`` LIST<FLOAT> (sparse and hybrid indexes), ``metadata`` STRING (JSON), NULL to omit.
- docs.pinecone.io/guides/data/understanding-imports ("Directory structure"): every ``.parquet``
  file inside a namespace prefix is imported; other file types are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matrix.matrix_corpus import corpus_source

from vmkit import Migration, TargetSpec, connect
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch, SparseVector
from vmkit.state.store import StateStore


def read_pinecone_import(root: Path) -> dict[str, dict[str, dict]]:
    """namespace -> id -> {"values", "sparse", "metadata"}, as the import would see them."""
    out: dict[str, dict[str, dict]] = {}
    assert not list(root.glob("*.parquet")), "parquet files outside a namespace directory"
    for ns_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        ns = "" if ns_dir.name == "__default__" else ns_dir.name
        for f in sorted(ns_dir.glob("*.parquet")):
            t = pq.read_table(f)
            assert t.schema.field("id").type == pa.string()
            assert t.schema.field("values").type == pa.list_(pa.float32())
            assert t.schema.field("metadata").type == pa.string()
            sparse = t.column("sparse_values").to_pylist() if "sparse_values" in t.column_names else [None] * len(t)
            if "sparse_values" in t.column_names:
                assert t.schema.field("sparse_values").type == pa.struct(
                    [("indices", pa.list_(pa.uint32())), ("values", pa.list_(pa.float32()))])
            for rid, values, sp, meta in zip(t.column("id").to_pylist(), t.column("values").to_pylist(),
                                             sparse, t.column("metadata").to_pylist()):
                assert rid not in out.setdefault(ns, {}), f"{rid} twice in namespace {ns!r}"
                out[ns][rid] = {"values": values, "sparse": sp,
                                "metadata": None if meta is None else json.loads(meta)}
    return out


def test_pinecone_layout_reads_back_with_the_documented_reader(tmp_path):
    conn = connect(f"parquet://{tmp_path}/pc?layout=pinecone")
    conn.create(TargetSpec("pc", 3, "dot", sparse=True))
    vecs = np.arange(12, dtype=np.float32).reshape(4, 3) / 3
    conn.upsert(RecordBatch(["a", "b"], vecs[:2], [{"genre": "drama", "year": 2020}, {}],
                            [SparseVector.of([9, 2], [0.5, 0.25]), None]))
    conn.upsert(RecordBatch(["a", "c"], vecs[2:], [{"tags": ["x", "y"]}, {"ok": True}], None, namespace="ns1"))
    conn.upsert(RecordBatch(["a", "c"], vecs[2:], [{"tags": ["x", "y"]}, {"ok": True}], None, namespace="ns1"))
    got = read_pinecone_import(tmp_path / "pc")
    assert sorted(got) == ["", "ns1"] and sorted(got[""]) == ["a", "b"] and sorted(got["ns1"]) == ["a", "c"]
    assert got[""]["a"] == {"values": pytest.approx(vecs[0].tolist()), "metadata": {"genre": "drama", "year": 2020},
                            "sparse": {"indices": [2, 9], "values": [0.25, 0.5]}}
    assert got[""]["b"]["metadata"] is None and got[""]["b"]["sparse"] is None
    assert got["ns1"]["a"]["metadata"] == {"tags": ["x", "y"]} and got["ns1"]["c"]["sparse"] is None
    assert (tmp_path / "pc" / "__default__").is_dir() and (tmp_path / "pc" / "vmkit-manifest.json").exists()
    back = connect(f"parquet://{tmp_path}/pc?layout=pinecone")  # and vmkit reads it back too
    assert back.describe().namespaces == {"": 2, "ns1": 2}
    assert back.fetch(["a"], "").sparse == [SparseVector.of([9, 2], [0.5, 0.25])]
    with pytest.raises(TerminalError, match="string ids"):
        conn.upsert(RecordBatch([7], vecs[:1], [{}]))
    assert conn.namespace_problem("__default__") and conn.namespace_problem("a/b")


def test_a_migration_into_the_pinecone_layout_is_verified_and_importable(tmp_path):
    source = corpus_source(n=600)
    target = f"parquet://{tmp_path}/export?layout=pinecone"
    m = Migration.create(source, target, migration_id="p", state=tmp_path / "s.db")
    assert not m.plan.errors, [str(w) for w in m.plan.errors]
    m.run()
    store = StateStore(tmp_path / "s.db")
    rec = store.get("p")
    rejected = store.query("SELECT count(*) FROM rejections WHERE migration_id='p'")[0][0]
    store.close()
    assert rec.state == "completed" and rec.verification == "passed"
    got = read_pinecone_import(tmp_path / "export")
    assert sum(len(v) for v in got.values()) == 600 - rejected > 500
    for records in got.values():
        for rid, r in records.items():
            assert rid.isascii() and len(r["values"]) == 16
            assert r["metadata"] is None or all(not isinstance(v, dict) for v in r["metadata"].values())
