"""WeaviateConnector through the real weaviate-client against the emulator, plus the pure
naming/type helpers in vmkit.connectors.weaviate.naming."""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("weaviate")

from emulators.weaviate_emulator import WeaviateEmulator

from vmkit.connectors import connect
from vmkit.connectors.base import Capabilities, TargetSpec
from vmkit.connectors.weaviate import naming as naming
from vmkit.connectors.weaviate import types as wtypes
from vmkit.connectors.weaviate.connector import WeaviateConnector
from vmkit.core.errors import (
    ConfigError,
    MissingDependency,
    SecretInURI,
    TerminalError,
    TransientError,
)
from vmkit.core.records import RecordBatch

DIM = 8


def ids_of(n: int, start: int = 0) -> list[str]:
    return [str(uuid.UUID(int=(i + start) * 104729 + 17)) for i in range(n)]


def batch(n: int, start: int = 0, ns: str = "", meta: Callable[[int], dict[str, Any]] | None = None) -> RecordBatch:
    rng = np.random.default_rng(start)
    return RecordBatch(ids_of(n, start), rng.standard_normal((n, DIM)).astype(np.float32),
                       [meta(i) if meta else {"n": i + start, "title": f"doc {i + start}"} for i in range(n)],
                       namespace=ns)


@pytest.fixture
def open_(weaviate_emu: WeaviateEmulator) -> Iterator[Callable[..., WeaviateConnector]]:
    opened: list[WeaviateConnector] = []

    def make(collection: str = "Docs", **params: Any) -> WeaviateConnector:
        conn = connect(weaviate_emu.uri(collection, **params))
        assert isinstance(conn, WeaviateConnector)
        opened.append(conn)
        return conn
    yield make
    for c in opened:
        c.close()


@pytest.fixture
def docs(open_: Callable[..., WeaviateConnector]) -> WeaviateConnector:
    conn = open_()
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    return conn


def scan_all(conn: WeaviateConnector, cursor: str | None = None, limit: int = 10) -> list[RecordBatch]:
    out = []
    while True:
        b, cursor = conn.scan(cursor, limit)
        out.append(b)
        if cursor is None:
            return out


# -- URI, capabilities, dependency ------------------------------------------------------------------
def test_uri_options() -> None:
    c = WeaviateConnector("weaviate://db.example:8081/docs?grpc_port=50052&tenant=t1&secure=true&consistency=all")
    assert (c.host, c.port, c.grpc_port, c.collection, c.tenant, c.secure, c.consistency) == \
        ("db.example", 8081, 50052, "Docs", "t1", True, "ALL")
    # namespaces map to tenants only on a multi-tenant target; a pinned tenant is one partition
    assert not c.capabilities.namespaces and not WeaviateConnector("weaviate://h:1/Docs").capabilities.namespaces
    assert WeaviateConnector("weaviate://h:1/Docs?multi_tenancy=true").capabilities.namespaces
    with pytest.raises(SecretInURI):
        WeaviateConnector("weaviate://h:8080/Docs?api_key=abc")
    with pytest.raises(ConfigError, match="collection name"):
        WeaviateConnector("weaviate://h:8080/my-docs")
    with pytest.raises(ConfigError, match="consistency"):
        WeaviateConnector("weaviate://h:8080/Docs?consistency=SOME")
    with pytest.raises(ConfigError, match="object_retries must be a whole number at least 0, got 'x'"):
        WeaviateConnector("weaviate://h:8080/Docs?object_retries=x")


def test_capabilities_declared() -> None:
    caps = WeaviateConnector.capabilities
    assert caps.id_kinds == {"uuid"} and not caps.sparse and caps.namespaces
    assert caps.metrics == {"cosine", "euclidean", "dot", "manhattan"}
    assert {"id", "_id", "_additional", "meta", "vector"} <= caps.reserved_fields
    assert caps.wire_bytes_per_float == 4 and not caps.normalizes_cosine


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weaviate", None)
    with pytest.raises(MissingDependency, match=r"vmkit\[weaviate\]"):
        WeaviateConnector("weaviate://127.0.0.1:1/Docs").count()


def test_api_key_env_must_exist() -> None:
    c = WeaviateConnector("weaviate://127.0.0.1:1/Docs?api_key_env=VMKIT_TEST_NO_SUCH_VAR")
    with pytest.raises(ConfigError, match="VMKIT_TEST_NO_SUCH_VAR"):
        c.count()


def test_api_key_from_env_and_never_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    with WeaviateEmulator(api_key="good-key-123") as weaviate_emu:
        monkeypatch.setenv("MY_WV_KEY", "good-key-123")
        ok = connect(weaviate_emu.uri("Docs", api_key_env="MY_WV_KEY"))
        ok.create(TargetSpec("Docs", DIM, "dot"))
        assert ok.count() == 0
        ok.close()
        monkeypatch.setenv("WEAVIATE_API_KEY", "leaky-secret-456")
        bad = connect(weaviate_emu.uri("Docs"))
        with pytest.raises(TerminalError) as err:
            bad.count()
        assert "401" in str(err.value) and "leaky-secret-456" not in str(err.value)
        bad.close()


# -- create / describe / drop / metrics ----------------------------------------------------------------
@pytest.mark.parametrize("metric, distance", [
    ("cosine", "cosine"), ("euclidean", "l2-squared"), ("dot", "dot"), ("manhattan", "manhattan")])
def test_create_maps_metrics(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector],
                             metric: str, distance: str) -> None:
    conn = open_()
    assert conn.describe() is None
    conn.create(TargetSpec("Docs", DIM, metric))
    schema = weaviate_emu.store.collections["Docs"].schema
    assert schema["vectorConfig"]["default"]["vectorIndexConfig"]["distance"] == distance
    conn.upsert(batch(3))
    info = conn.describe()
    assert info is not None and (info.metric, info.dimension, info.count) == (metric, DIM, 3)
    conn.drop()
    assert conn.describe() is None and conn.count() == 0


def test_create_refuses_what_weaviate_lacks(docs: WeaviateConnector, open_: Callable[..., WeaviateConnector]) -> None:
    with pytest.raises(TerminalError, match="already exists"):
        docs.create(TargetSpec("Docs", DIM, "cosine"))
    other = open_("Other")
    with pytest.raises(TerminalError, match="sparse"):
        other.create(TargetSpec("Other", DIM, "dot", sparse=True))
    with pytest.raises(TerminalError, match="metric"):
        other.create(TargetSpec("Other", DIM, "jaccard"))


# -- scan and resume ---------------------------------------------------------------------------------
def test_scan_resumes_from_persisted_cursor(docs: WeaviateConnector, open_: Callable[..., WeaviateConnector]) -> None:
    docs.upsert(batch(57))
    first, cursor = [], None
    for _ in range(3):
        b, cursor = docs.scan(cursor, 10)
        first.append(b)
    persisted = str(cursor)  # what the state store keeps
    docs.close()
    rest = scan_all(open_(), persisted, 10)  # a new process resumes
    got = [i for b in first + rest for i in b.ids]
    assert len(got) == len(set(got)) == 57 and set(got) == set(ids_of(57))
    assert got == sorted(got)  # uuid order: no gap can hide behind the cursor
    whole = RecordBatch.concat(first + rest)
    src = batch(57)
    order = [src.ids.index(i) for i in whole.ids]
    assert np.array_equal(whole.vectors, src.vectors[order])
    assert [m["n"] for m in whole.metadata] == [src.metadata[k]["n"] for k in order]


_SIZES = {"alpha": 23, "beta": 0, "gamma": 9, "delta": 31}


def _tenants(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector], **params: Any) -> WeaviateConnector:
    """Collection "Docs" with the tenants of ``_SIZES``; beta exists and holds nothing."""
    conn = open_(multi_tenancy="true", **params)
    conn.create(TargetSpec("Docs", DIM, "dot"))
    for k, (t, n) in enumerate(_SIZES.items()):
        if n:
            conn.upsert(batch(n, start=k * 1000, ns=t))
    with weaviate_emu.client() as client:
        client.collections.get("Docs").tenants.create("beta")
    return conn


def _in_turns(sizes: dict[str, int], limit: int, streams: int) -> list[tuple[str, int]]:
    """(tenant, records) of each batch: tenants opened in bytewise order, ``streams`` at once,
    each taking a page in turn until a short one."""
    waiting = sorted(sizes, key=str.encode)
    left = dict(sizes)
    open_: list[str] = []
    out = []
    while waiting or open_:
        while waiting and len(open_) < streams:
            open_.append(waiting.pop(0))
        t = open_.pop(0)
        page = min(limit, left[t])
        left[t] -= page
        if page == limit:
            open_.append(t)
        if page:
            out.append((t, page))
    return out


@pytest.mark.parametrize("streams", [1, 2, 4])
def test_scan_reads_tenants_in_turn_and_resumes_anywhere(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector],
                                                        streams: int) -> None:
    conn = _tenants(weaviate_emu, open_, tenant_streams=streams)
    info = conn.describe()
    assert info is not None and info.namespaces == _SIZES
    assert conn.count() == 63
    full, cursors, cursor = [], [], None
    while True:
        b, cursor = conn.scan(cursor, 10)
        if len(b):
            full.append((b.namespace, list(b.ids)))
            cursors.append(cursor)
        if cursor is None:
            break
    assert [(t, len(ids)) for t, ids in full] == _in_turns(_SIZES, 10, streams)
    for t, k in (("alpha", 0), ("gamma", 2000), ("delta", 3000)):  # each tenant whole, in uuid order
        assert [i for u, ids in full if u == t for i in ids] == ids_of(_SIZES[t], k)
    for k, cur in enumerate(cursors[:-1]):  # a new process resumes from any batch's cursor
        rest = [(b.namespace, list(b.ids)) for b in scan_all(open_(multi_tenancy="true", tenant_streams=streams), cur)
                if len(b)]
        assert rest == full[k + 1:]


def test_scan_resumes_a_cursor_of_the_earlier_form(weaviate_emu: WeaviateEmulator,
                                                  open_: Callable[..., WeaviateConnector]) -> None:
    """State files written when each tenant kept its own position (true once finished, absent
    before it started) still resume: the rest of alpha, then the tenants not started."""
    _tenants(weaviate_emu, open_)
    old = orjson.dumps({"pos": {"alpha": ids_of(10)[-1], "beta": True}}).decode()
    rest = [b for b in scan_all(open_(multi_tenancy="true"), old) if len(b)]
    seen: dict[str, list[str]] = {}
    for b in rest:
        seen.setdefault(b.namespace, []).extend(b.ids)
    assert seen == {"alpha": ids_of(23)[10:], "gamma": ids_of(9, 2000), "delta": ids_of(31, 3000)}


def test_tenants_are_read_at_once_with_one_listing_of_them(weaviate_emu: WeaviateEmulator,
                                                           open_: Callable[..., WeaviateConnector]) -> None:
    """Small tenants, each a round trip: four are read ahead at once, and the tenant list is
    asked for once, not once a page (again only to see whether tenants were added at the end)."""
    conn = open_(multi_tenancy="true")
    conn.create(TargetSpec("Docs", DIM, "dot"))
    for t in range(24):
        conn.upsert(batch(5, start=t * 100, ns=f"t{t:02d}"))
    weaviate_emu.faults.latency_s, weaviate_emu.faults.busiest = 0.01, 0
    reader = open_(multi_tenancy="true")
    before = weaviate_emu.servicer.tenant_lists
    got = [b for b in scan_all(reader) if len(b)]
    weaviate_emu.faults.latency_s = 0
    assert [b.namespace for b in got] == [f"t{t:02d}" for t in range(24)]
    assert weaviate_emu.faults.busiest > 1
    assert weaviate_emu.servicer.tenant_lists - before <= 2


def test_pinned_tenant_reads_and_writes_one_tenant(open_: Callable[..., WeaviateConnector]) -> None:
    conn = open_(tenant="t1")
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    conn.upsert(batch(5))  # no namespace: the URI's tenant
    other = open_(multi_tenancy="true")
    other.upsert(batch(4, start=100, ns="t2"))
    assert len(other.fetch(ids_of(4, 100), "t2")) == 4 and len(other.fetch(ids_of(4, 100), "nowhere")) == 0
    batches = scan_all(conn)
    # one pinned tenant is the whole collection to vmkit: no namespace on the records
    assert {b.namespace for b in batches if len(b)} == {""} and sum(map(len, batches)) == 5
    assert not conn.capabilities.namespaces and other.capabilities.namespaces
    assert other.count() == 9


def test_named_vector_selection(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector]) -> None:
    from weaviate.classes.config import Configure, VectorDistances
    from weaviate.classes.data import DataObject

    client = weaviate_emu.client()
    col = client.collections.create("Multi", vector_config=[
        Configure.Vectors.self_provided(name="text"),
        Configure.Vectors.self_provided(name="image", vector_index_config=Configure.VectorIndex.hnsw(
            distance_metric=VectorDistances.MANHATTAN))])
    col.data.insert_many([DataObject(uuid=uuid.UUID(int=i + 1), properties={"i": i},
                                     vector={"text": [float(i)] * 4, "image": [float(-i)] * 3}) for i in range(5)]
                         + [DataObject(uuid=uuid.UUID(int=99), vector={"text": [0.0] * 4})])
    client.close()
    conn = open_("Multi", vector="image")
    info = conn.describe()
    assert info is not None and (info.vector, info.dimension, info.metric) == ("image", 3, "manhattan")
    assert info.named_vectors == {"text": {"dimension": 4, "metric": "cosine"},
                                  "image": {"dimension": 3, "metric": "manhattan"}}
    b, _ = conn.scan(None, 100)
    assert b.dimension == 3 and len(b) == 5 and b.vectors[2].tolist() == [-2.0] * 3
    assert [r.record_id for r in b.rejected] == [str(uuid.UUID(int=99))]  # no 'image' vector
    with pytest.raises(TerminalError, match="no vector named"):
        open_("Multi", vector="audio").describe()


# -- fetch / delete / consistency ----------------------------------------------------------------------
def test_fetch_delete_and_consistency(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector]) -> None:
    from weaviate.proto.v1 import base_pb2

    conn = open_(consistency="ALL")
    conn.create(TargetSpec("Docs", DIM, "euclidean"))
    src = batch(20)
    conn.upsert(src)
    ids = src.ids
    got = conn.fetch([ids[7], ids[3], "not-a-uuid", str(uuid.uuid4()), ids[7].upper()])
    assert got.ids == [ids[7], ids[3]]  # request order, canonical lowercase, missing ones absent
    assert np.array_equal(got.vectors, src.vectors[[7, 3]])
    assert {lvl for _, lvl in weaviate_emu.servicer.calls} == {base_pb2.CONSISTENCY_LEVEL_ALL}
    conn.delete(ids[:5] + ["not-a-uuid"])
    assert conn.count() == 15 and len(conn.fetch(ids[:5])) == 0


# -- writes: failures, retries, errors ------------------------------------------------------------------
def test_per_object_failures_name_the_ids(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    b = batch(10)
    weaviate_emu.faults.object_fail_ids = {b.ids[2], b.ids[6]}
    with pytest.raises(TerminalError) as err:
        docs.upsert(b)
    assert b.ids[2] in str(err.value) and b.ids[6] in str(err.value) and "injected" in str(err.value)
    assert docs.count() == 8  # the others were written; nothing silently dropped


def test_all_objects_failing_still_names_them(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    b = batch(2)
    weaviate_emu.faults.object_fail_ids = set(b.ids)
    with pytest.raises(TerminalError) as err:
        docs.upsert(b)
    assert all(i in str(err.value) for i in b.ids)


def test_transient_object_failures_are_retried(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector]) -> None:
    conn = open_(object_retries="3")
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    b = batch(10)
    weaviate_emu.faults.object_transient_ids = {b.ids[1]: 2, b.ids[4]: 1}
    conn.upsert(b)
    assert conn.count() == 10 and weaviate_emu.faults.injected == 3
    weaviate_emu.faults.object_transient_ids = {b.ids[0]: 100}
    with pytest.raises(TransientError, match=b.ids[0]):
        conn.upsert(b)


def test_grpc_status_codes_classified(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    weaviate_emu.faults.fail_next = ["UNAVAILABLE"]  # the client retries this itself
    docs.upsert(batch(3))
    weaviate_emu.faults.fail_next = ["UNAVAILABLE"] * 4  # past the client's retries
    with pytest.raises(TransientError):
        docs.upsert(batch(3))
    weaviate_emu.faults.fail_next = ["RESOURCE_EXHAUSTED"]
    with pytest.raises(TransientError, match="RESOURCE_EXHAUSTED"):
        docs.upsert(batch(3))
    weaviate_emu.faults.fail_next = ["DEADLINE_EXCEEDED"]
    with pytest.raises(TransientError):
        docs.scan(None, 5)
    weaviate_emu.faults.fail_next = ["INVALID_ARGUMENT"]
    with pytest.raises(TerminalError, match="INVALID_ARGUMENT"):
        docs.scan(None, 5)
    assert docs.count() == 3


def test_http_status_classified(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    weaviate_emu.faults.http_fail_next = [503]
    with pytest.raises(TransientError, match="503"):
        docs.describe()
    weaviate_emu.faults.http_fail_next = [429]
    with pytest.raises(TransientError):
        docs.describe()
    weaviate_emu.faults.http_fail_next = [422]
    with pytest.raises(TerminalError):
        docs.describe()


def test_connection_refused_is_transient() -> None:
    conn = WeaviateConnector("weaviate://127.0.0.1:1/Docs?grpc_port=2&timeout=2")
    with pytest.raises(TransientError):
        conn.count()


def test_upsert_splits_into_request_limits(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    docs.capabilities = Capabilities(max_batch_records=7, id_kinds=frozenset({"uuid"}))
    docs.upsert(batch(20))
    calls = [m for m, _ in weaviate_emu.servicer.calls if m == "BatchObjects"]
    assert docs.count() == 20 and len(calls) == 3


def test_ids_and_namespaces_checked(docs: WeaviateConnector, open_: Callable[..., WeaviateConnector]) -> None:
    b = batch(2)
    with pytest.raises(TerminalError, match="not-a-uuid"):
        docs.upsert(RecordBatch(["not-a-uuid", b.ids[1]], b.vectors, b.metadata))
    with pytest.raises(TerminalError, match="not multi-tenant"):
        docs.upsert(batch(2, ns="prod"))
    mt = open_("Tenanted", multi_tenancy="true")
    mt.create(TargetSpec("Tenanted", DIM, "dot"))
    with pytest.raises(TerminalError, match="multi-tenant"):
        mt.upsert(batch(2))


@pytest.mark.parametrize("key, fragment", [
    ("Title", "lower-cases"), ("user-id", "not a valid"), ("vector", "reserved"), ("id", "reserved")])
def test_keys_weaviate_would_change_are_refused(docs: WeaviateConnector, key: str, fragment: str) -> None:
    with pytest.raises(TerminalError, match=fragment):
        docs.upsert(batch(1, meta=lambda i: {key: 1}))
    assert docs.count() == 0


def test_case_collisions_and_bad_values_refused(docs: WeaviateConnector) -> None:
    docs.upsert(batch(1, meta=lambda i: {"userid": 1}))
    with pytest.raises(TerminalError, match="case-insensitive"):
        docs.upsert(batch(1, start=5, meta=lambda i: {"userId": 2}))
    with pytest.raises(TerminalError, match="mixing"):
        docs.upsert(batch(1, start=6, meta=lambda i: {"mixed": [1, "a"]}))
    with pytest.raises(TerminalError, match="nested"):
        docs.upsert(batch(1, start=7, meta=lambda i: {"obj": {"bad-key": 1}}))


# -- types ---------------------------------------------------------------------------------------------
def test_types_round_trip(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector) -> None:
    when = dt.datetime(2024, 2, 29, 13, 45, 7, 250000, tzinfo=dt.UTC)
    meta = {
        "s": "text", "f": 0.1, "i": -42, "b": True, "strs": ["a", "b"], "ints": [1, 2, 3],
        "floats": [0.5, 1.5], "mixed_nums": [1, 2.5], "bools": [True, False], "empty": [],
        "when": when, "dates": [when], "ref": uuid.UUID(int=5),
        "obj": {"k": 7, "deep": {"x": "y", "l": [1.5]}, "items": [{"a": 1}, {"a": 2}]},
        "nothing": None, "day": "2024-01-01T00:00:00Z",
    }
    b = batch(1, meta=lambda i: meta)
    docs.upsert(b)
    got = docs.fetch(b.ids).metadata[0]
    assert got == {
        "s": "text", "f": 0.1, "i": -42, "b": True, "strs": ["a", "b"], "ints": [1, 2, 3],
        "floats": [0.5, 1.5], "mixed_nums": [1.0, 2.5], "bools": [True, False], "empty": [],
        "when": "2024-02-29T13:45:07.25Z", "dates": ["2024-02-29T13:45:07.25Z"],
        "ref": str(uuid.UUID(int=5)),
        "obj": {"k": 7, "deep": {"x": "y", "l": [1.5]}, "items": [{"a": 1}, {"a": 2}]},
        "day": "2024-01-01T00:00:00Z",  # strings stay text: no auto-schema date guess
    }
    assert type(got["i"]) is int and type(got["obj"]["k"]) is int
    props = weaviate_emu.store.collections["Docs"].schema["properties"]
    types_ = {p["name"]: p["dataType"][0] for p in props}
    assert (types_["i"], types_["when"], types_["day"], types_["mixed_nums"]) == ("int", "date", "text", "number[]")


def test_big_ints_lose_precision_as_declared(docs: WeaviateConnector) -> None:
    big = 2**53 + 1
    b = batch(1, meta=lambda i: {"big": big, "bigs": [big]})
    docs.upsert(b)
    got = docs.fetch(b.ids).metadata[0]
    assert not WeaviateConnector.capabilities.metadata_big_ints
    assert got["big"] != big and got["bigs"] == [big]  # scalars travel as float64, arrays as int64


# -- naming helpers (pure) --------------------------------------------------------------------------------
def test_collection_names() -> None:
    assert naming.collection_name("docs") == "Docs"
    assert naming.collection_name("my-docs.v2") == "MyDocsV2"
    assert naming.collection_name("2024_docs") == "C2024Docs"
    assert naming.collection_name("---") == "Collection"
    assert all(naming.is_valid_collection_name(naming.collection_name(n)) for n in ["a b", "é", "x" * 400])


def test_property_rules() -> None:
    assert naming.property_problem("title") is None and naming.property_problem("_vmkit_source_id") is None
    assert "reserved" in str(naming.property_problem("id")) and "reserved" in str(naming.property_problem("Meta"))
    assert "lower-cases" in str(naming.property_problem("Title"))
    assert "not a valid" in str(naming.property_problem("user-id"))
    assert naming.sanitize_property("user-id") == "user_id"
    assert naming.sanitize_property("9lives") == "_9lives"
    assert naming.sanitize_property("_additional") == "_additional_"
    assert naming.sanitize_property("Title") == "title"
    assert naming.find_collisions(["Name", "name", "x", "NAME"]) == [["NAME", "Name", "name"]]


def test_renames_resolve_collisions_deterministically() -> None:
    keys = ["name", "Name", "user-id", "user_id", "id", "userId", "userid"]
    renames = naming.plan_property_renames(keys)
    assert renames == {"Name": "name_2", "id": "id_", "user-id": "user_id_2", "userid": "userid_2"}
    assert naming.plan_property_renames(list(reversed(keys))) == renames
    # later keys never disturb earlier decisions
    later = naming.plan_property_renames(keys + ["name_2", "NAME"], previous=renames)
    assert {k: later[k] for k in renames} == renames
    assert later["name_2"] != "name_2" and later["NAME"] not in renames.values()
    existing = naming.plan_property_renames(["title"], existing=["Title"])
    assert existing == {"title": "title_2"}


_keys = st.text(alphabet="aAbB_-1 .é", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(_keys, max_size=12, unique=True))
def test_renames_are_valid_unique_and_reversible(keys: list[str]) -> None:
    renames = naming.plan_property_renames(keys)
    stored = [renames.get(k, k) for k in keys]
    assert all(naming.property_problem(s) is None for s in stored)
    assert len({s.lower() for s in stored}) == len(keys)  # unique the way Weaviate compares
    meta = {k: i for i, k in enumerate(keys)}
    assert naming.restore_keys(naming.rename_keys(meta, renames), renames) == meta


def test_value_problems_and_specs() -> None:
    assert wtypes.value_problem([1, 2.5]) is None and wtypes.value_problem({"a": [1, "x"]})
    assert "null" in str(wtypes.value_problem([1, None]))
    assert "list of lists" in str(wtypes.value_problem([[1], [2]]))
    specs = wtypes.infer_specs([{"a": 1, "o": {"x": 1}}, {"a": 2.5, "o": {"y": "s"}, "e": []}, {"n": None}])
    assert specs == {"a": {"t": "number"}, "o": {"t": "object", "n": {"x": {"t": "int"}, "y": {"t": "text"}}},
                     "e": {"t": "text[]"}}


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("VMKIT_WEAVIATE_URL"), reason="VMKIT_WEAVIATE_URL is not set")
def test_live_round_trip() -> None:
    """VMKIT_WEAVIATE_URL=weaviate://host:8080?grpc_port=50051 (API key from WEAVIATE_API_KEY)."""
    base = os.environ["VMKIT_WEAVIATE_URL"]
    head, _, query = base.partition("?")
    name = f"VmkitLive{uuid.uuid4().hex[:8]}"
    conn = connect(f"{head.rstrip('/')}/{name}" + (f"?{query}" if query else ""))
    try:
        conn.create(TargetSpec(name, DIM, "cosine"))
        src = batch(25)
        conn.upsert(src)
        got = RecordBatch.concat(scan_all(conn))
        assert sorted(got.ids) == sorted(src.ids)
        assert conn.fetch(src.ids[:3]).ids == src.ids[:3]
    finally:
        conn.drop()
        conn.close()


def test_inactive_tenant_is_a_clear_terminal_error(weaviate_emu: WeaviateEmulator, open_: Callable[..., WeaviateConnector]) -> None:
    conn = open_(multi_tenancy="true")
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    conn.upsert(batch(3, ns="hot"))
    weaviate_emu.store.collections["Docs"].tenants["cold"] = "COLD"
    info = conn.describe()  # the plan decides (tenants= on the URI): an error listing it by default
    assert info is not None and info.namespaces == {"hot": 3}
    assert [f["severity"] for f in info.findings] == ["error"] and "cold (INACTIVE)" in info.findings[0]["message"]
    with pytest.raises(TerminalError, match="not active"):
        scan_all(conn)


def test_property_added_by_another_writer_is_not_an_error(weaviate_emu: WeaviateEmulator, docs: WeaviateConnector,
                                                          open_: Callable[..., WeaviateConnector]) -> None:
    docs.upsert(batch(2))  # caches the schema
    open_().upsert(batch(2, start=10, meta=lambda i: {"extra": i}))  # a second writer adds "extra"
    docs.upsert(batch(2, start=20, meta=lambda i: {"extra": i + 1}))
    assert docs.count() == 6 and docs.fetch(ids_of(1, 20)).metadata == [{"extra": 1}]


# -- sampling for a profile ---------------------------------------------------------------------
def _random_ids(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(uuid.UUID(int=int.from_bytes(rng.bytes(16), "big"), version=4)) for _ in range(n)]


def _fill(conn: WeaviateConnector, sizes: dict[str, int], ids: Callable[[int, int], list[str]]) -> None:
    for k, (t, n) in enumerate(sizes.items()):
        b = batch(n, start=k * 100_000, ns=t)
        conn.upsert(RecordBatch(ids(n, k), b.vectors, b.metadata, namespace=t))


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scans: list[int] = []
    real = WeaviateConnector.scan

    def scan(self: WeaviateConnector, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        scans.append(limit)
        return real(self, cursor, limit)
    monkeypatch.setattr(WeaviateConnector, "scan", scan)
    return scans


def test_a_big_collection_is_sampled_by_cursor_seeks(weaviate_emu: WeaviateEmulator, monkeypatch: pytest.MonkeyPatch,
                                                     open_: Callable[..., WeaviateConnector]) -> None:
    conn = open_(multi_tenancy="true")
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    _fill(conn, {"alpha": 3000, "beta": 1500, "gamma": 20}, _random_ids)
    scans = _count_scans(monkeypatch)
    weaviate_emu.servicer.calls.clear()
    batches = conn.sample(300, seed=5)
    searches = [m for m, _ in weaviate_emu.servicer.calls if m == "Search"]
    assert not scans, "a sample of a big collection must not read it all"
    got: dict[str, list[RecordBatch]] = {}
    for b in batches:
        got.setdefault(b.namespace, []).append(b)
    # By share: 300 of 4,520 -> 199 of alpha, 100 of beta, 1 of gamma, in runs of 50 or fewer.
    assert {t: sum(map(len, bs)) for t, bs in got.items()} == {"alpha": 199, "beta": 100, "gamma": 1}
    assert len(searches) <= 2 * (4 + 2 + 1)
    for bs in got.values():
        ids = [rid for b in bs for rid in b.ids]
        assert len(ids) == len(set(ids))
        assert all(b.vectors.shape == (len(b), DIM) for b in bs)
    # Ids are random, so the runs land all over the records (meta "n" is the insert order).
    tenths = {m["n"] * 10 // 3000 for b in got["alpha"] for m in b.metadata}
    assert tenths == set(range(10))
    again = conn.sample(300, seed=5)
    assert [b.ids for b in again] == [b.ids for b in batches]  # a seed gives one sample


def test_tenants_and_their_seeks_are_sampled_at_once(weaviate_emu: WeaviateEmulator,
                                                     open_: Callable[..., WeaviateConnector]) -> None:
    """20 tenants: each gives its share, several seeks wait on their round trips at once,
    and the sample is still the seed's alone."""
    conn = open_(multi_tenancy="true")
    conn.create(TargetSpec("Docs", DIM, "cosine"))
    sizes = {f"t{k:02d}": 500 for k in range(20)}
    _fill(conn, sizes, _random_ids)
    weaviate_emu.faults.latency_s, weaviate_emu.faults.busiest = 0.01, 0
    batches = conn.sample(400, seed=2)
    weaviate_emu.faults.latency_s = 0
    got: dict[str, list[str]] = {}
    for b in batches:
        got.setdefault(b.namespace, []).extend(b.ids)
    assert {t: len(ids) for t, ids in got.items()} == dict.fromkeys(sizes, 20)
    assert all(len(set(ids)) == 20 for ids in got.values())
    assert weaviate_emu.faults.busiest > 1
    assert [b.ids for b in conn.sample(400, seed=2)] == [b.ids for b in batches]


def test_a_small_collection_is_read_whole_for_its_sample(docs: WeaviateConnector) -> None:
    docs.upsert(batch(40))
    assert sorted(rid for b in docs.sample(100) for rid in b.ids) == sorted(ids_of(40))


def test_bunched_uuids_fall_back_to_reading_the_collection(docs: WeaviateConnector,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Uuids made from small numbers sit at the very start of the uuid space, where random
    seeks almost never land: the sample is then read the generic way, in full."""
    docs.upsert(batch(600))
    scans = _count_scans(monkeypatch)
    batches = docs.sample(100)
    assert scans and sum(map(len, batches)) == 100
    assert {m["n"] * 10 // 600 for b in batches for m in b.metadata} == set(range(10))
