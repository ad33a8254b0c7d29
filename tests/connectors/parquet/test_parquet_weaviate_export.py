"""layout=weaviate reads a Weaviate collection export (files as the server writes them:
tests/emulators/weaviate_export.py, from weaviate/weaviate usecases/export). The export must read
as the live collection reads through the Weaviate connector, migrate with full verification and
counts reconciled with the export's own objectsExported, and say clearly what is wrong with a
broken export."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("pyarrow")

from emulators.weaviate_emulator import WeaviateEmulator
from emulators.weaviate_export import MULTI, export_collection

from vmkit import Migration, connect
from vmkit.core.errors import ConfigError, PlanError
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

SINGLE = 1
N = 150


def _bytes(v: np.ndarray) -> bytes:
    return struct.pack(f"<{len(v)}f", *v.tolist())


def _props(i: int) -> dict:
    return {"title": f"doc {i} ✓", "rank": i, "score": i / 7, "tags": [f"t{i % 3}", "x"],
            "published": f"2026-0{1 + i % 9}-1{i % 10}T08:00:00Z", "flag": i % 2 == 0,
            "info": {"author": f"a{i}", "note": None, "pages": [1, 2]} if i % 5 else None}


def _load(emu: WeaviateEmulator, *, tenants: list[str] | None = None, multi: bool = False) -> None:
    """Docs: a legacy dot vector (6) and a named 'img' vector (4); with ``tenants`` a
    multi-tenant class, objects spread over them; with ``multi`` a ColBERT-style space too."""
    store = emu.store
    store.create_class({"class": "Docs", "vectorIndexConfig": {"distance": "dot"},
                        "multiTenancyConfig": {"enabled": bool(tenants)},
                        "properties": [{"name": "published", "dataType": ["date"]},
                                       {"name": "info", "dataType": ["object"],
                                        "nestedProperties": [{"name": "author", "dataType": ["text"]},
                                                             {"name": "note", "dataType": ["text"]},
                                                             {"name": "pages", "dataType": ["int[]"]}]}]})
    store.add_named_vector("Docs", "img", "cosine")
    if multi:
        store.add_named_vector("Docs", "colbert", "cosine")
    if tenants:
        store.add_tenants("Docs", [{"name": t} for t in tenants])
    rng = np.random.default_rng(3)
    for i in range(N):
        vectors = {"": (SINGLE, _bytes(rng.standard_normal(6).astype(np.float32))),
                   "img": (SINGLE, _bytes(rng.standard_normal(4).astype(np.float32)))}
        if multi:
            vectors["colbert"] = (MULTI, (3).to_bytes(2, "little") + _bytes(rng.standard_normal(6).astype(np.float32)))
        props = {k: v for k, v in _props(i).items() if v is not None}
        store.put_object("Docs", tenants[i % len(tenants)] if tenants else "", str(uuid.UUID(int=i * 7919 + 11)),
                         props, vectors)


def _all(conn) -> dict[tuple[str, str], tuple[dict, dict]]:
    """(namespace, id) -> (vectors by name, metadata), over a whole scan."""
    out, cursor = {}, None
    while True:
        batch, cursor = conn.scan(cursor, 40)
        vecs = batch.dense_vectors()
        for i, rid in enumerate(batch.ids):
            assert (batch.namespace, rid) not in out, f"{rid} read twice"
            out[(batch.namespace, rid)] = ({n: v[i].tolist() for n, v in vecs.items()}, batch.metadata[i])
        assert not batch.rejected
        if cursor is None:
            return out


@pytest.mark.parametrize("tenants", [None, ["acme", "beta", "gamma"]])
def test_the_export_reads_as_the_live_collection_reads(weaviate_emu, tmp_path, tenants):
    _load(weaviate_emu, tenants=tenants)
    out = export_collection(weaviate_emu.store, "Docs", tmp_path)
    uri_params = {"multi_tenancy": "true"} if tenants else {}
    with connect(weaviate_emu.uri("Docs", **uri_params)) as live, \
            connect(f"parquet://{out}?layout=weaviate&metric=dot") as export:
        a, b = live.describe(), export.describe()
        assert (b.dimension, b.metric, b.count, b.namespaces, b.vector_name) == \
            (a.dimension, a.metric, a.count, a.namespaces, a.vector_name)
        assert b.extra_vectors == {"img": {"dimension": 4, "metric": "dot"}}  # the one metric given
        want, got = _all(live), _all(export)
        assert len(got) == N and got == want  # ids, every vector bit for bit, metadata (dates, nesting)
        some = list(want)[:5]
        fetched = export.fetch([rid for _, rid in some], some[0][0])
        assert set(fetched.ids) >= {rid for ns, rid in some if ns == some[0][0]}


def test_an_export_migrates_with_full_verification_and_its_own_count(weaviate_emu, tmp_path):
    _load(weaviate_emu, tenants=["acme", "beta"])
    out = export_collection(weaviate_emu.store, "Docs", tmp_path, ranges=3, row_group=16)
    meta = json.loads((out / "export_metadata.json").read_text())
    exported = sum(s["objectsExported"] for s in meta["shardStatus"]["Docs"].values())
    m = Migration.create(f"parquet://{out}?layout=weaviate", f"parquet://{tmp_path}/copy",
                         state=StateStore(tmp_path / "s.db"), batch_size=25)
    assert any("distance" in w.message for w in m.plan.warnings)  # the metric was assumed: said so
    st = m.run()
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_read == st.records_written == exported == N
    with connect(f"parquet://{tmp_path}/copy") as copy, connect(f"parquet://{out}?layout=weaviate") as src:
        assert copy.describe().namespaces == src.describe().namespaces == {"acme": 75, "beta": 75}
        assert _all(copy) == _all(src)


def test_a_resumed_scan_continues_exactly_in_a_new_process(weaviate_emu, tmp_path):
    _load(weaviate_emu)
    out = export_collection(weaviate_emu.store, "Docs", tmp_path, ranges=3, row_group=10)
    uri = f"parquet://{out}?layout=weaviate"
    first, cursor = connect(uri).scan(None, 37)
    seen = list(first.ids)
    while cursor is not None:
        batch, cursor = connect(uri).scan(cursor, 37)  # a fresh connector each time
        seen += batch.ids
    assert len(seen) == len(set(seen)) == N


def test_multi_vector_spaces_and_skipped_tenants_are_named_by_the_plan(weaviate_emu, tmp_path):
    _load(weaviate_emu, tenants=["acme", "cold"], multi=True)
    weaviate_emu.store.add_tenants("Docs", [{"name": "cold", "activityStatus": "INACTIVE"}])
    out = export_collection(weaviate_emu.store, "Docs", tmp_path)
    m = Migration.create(f"parquet://{out}?layout=weaviate&metric=dot", f"parquet://{tmp_path}/copy",
                         state=StateStore(tmp_path / "s.db"))
    said = "\n".join(str(w) for w in m.plan.warnings)
    assert "colbert" in said and "multi-vector" in said
    assert "cold (tenant is COLD)" in said and "distance" not in said
    assert m.run().state == "completed"
    assert m.status().records_written == N // 2


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_broken_exports_are_plan_errors_naming_the_file(weaviate_emu, tmp_path):
    _load(weaviate_emu)
    out = export_collection(weaviate_emu.store, "Docs", tmp_path)
    files = sorted(out.glob("*.parquet"))
    meta_path = out / "export_metadata.json"
    meta = json.loads(meta_path.read_text())

    _truncate(files[1])
    with pytest.raises(PlanError, match=files[1].name):
        connect(f"parquet://{out}?layout=weaviate").describe()
    files[1].unlink()  # a file missing: the export's own count says so
    with pytest.raises(PlanError, match="export_metadata.json says 150"):
        connect(f"parquet://{out}?layout=weaviate").describe()

    meta_path.write_text(json.dumps({**meta, "status": "FAILED", "error": "disk full"}))
    with pytest.raises(PlanError, match="FAILED.*disk full"):
        connect(f"parquet://{out}?layout=weaviate").describe()
    meta_path.write_text(json.dumps({**meta, "classes": ["Docs", "Other"]}))
    with pytest.raises(ConfigError, match=r"\?collection=NAME"):
        connect(f"parquet://{out}?layout=weaviate").describe()
    meta_path.unlink()
    with pytest.raises(PlanError, match="not a Weaviate export"):
        connect(f"parquet://{out}?layout=weaviate").describe()
    with pytest.raises(ConfigError, match="read-only"):
        connect(f"parquet://{out}?layout=weaviate").upsert(RecordBatch.empty(6))


def test_a_bad_row_is_dead_lettered_with_its_file_and_row_and_counts_balance(weaviate_emu, tmp_path):
    _load(weaviate_emu)
    out = export_collection(weaviate_emu.store, "Docs", tmp_path, ranges=1)
    f = next(out.glob("*.parquet"))
    table = pq.read_table(f)
    vec = table.column("vector").to_pylist()
    vec[7] = vec[7][:-4]  # one float short
    props = table.column("properties").to_pylist()
    props[9] = b"[1, 2]"  # not an object
    import pyarrow as pa

    table = table.set_column(3, table.schema.field(3), pa.array(vec, pa.binary()))
    table = table.set_column(6, table.schema.field(6), pa.array(props, pa.binary()))
    pq.write_table(table.replace_schema_metadata(pq.read_metadata(f).metadata), f)
    m = Migration.create(f"parquet://{out}?layout=weaviate&metric=dot", f"parquet://{tmp_path}/copy",
                         state=StateStore(tmp_path / "s.db"), sample_rate=0)
    st = m.run()
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_read == N and st.records_written == N - 2
    rows = m.store.query("SELECT record_id, field, reason FROM rejections WHERE migration_id=?", m.id)
    reasons = {r[0]: r[2] for r in rows}
    assert len(reasons) == 2 and sorted(r[1] for r in rows) == ["metadata", "vector"]
    assert any(f"{f.name} row 7" in why and "vector 'default' has 5 values, expected 6" in why for why in reasons.values())
    assert any(f"{f.name} row 9" in why and "not a JSON object" in why for why in reasons.values())


def test_a_row_whose_named_vectors_are_not_json_is_dead_lettered_not_a_crash(weaviate_emu, tmp_path):
    import pyarrow as pa

    _load(weaviate_emu)
    out = export_collection(weaviate_emu.store, "Docs", tmp_path, ranges=1)
    f = next(out.glob("*.parquet"))
    table = pq.read_table(f)
    named = table.column("named_vectors").to_pylist()
    named[0] = b'{"img": [1.0, 2'  # cut short, in the rows describe() looks at
    table = table.set_column(4, table.schema.field(4), pa.array(named, pa.binary()))
    pq.write_table(table.replace_schema_metadata(pq.read_metadata(f).metadata), f)
    conn = connect(f"parquet://{out}?layout=weaviate&metric=dot")
    assert conn.describe().extra_vectors == {"img": {"dimension": 4, "metric": "dot"}}
    batch, _ = conn.scan(None, 10)
    assert len(batch) == 9 and len(batch.rejected) == 1
    assert f"{f.name} row 0" in batch.rejected[0].reason and "not JSON" in batch.rejected[0].reason
