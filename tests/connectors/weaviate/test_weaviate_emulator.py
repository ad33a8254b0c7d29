"""Fidelity of the Weaviate emulator, driven through the unmodified weaviate-client v4."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

weaviate = pytest.importorskip("weaviate")

from emulators.weaviate_emulator import Faults, WeaviateEmulator  # noqa: E402 - after the importorskip
from weaviate.classes.config import Configure, DataType, Property, VectorDistances  # noqa: E402 - after the importorskip
from weaviate.classes.data import DataObject  # noqa: E402 - after the importorskip
from weaviate.classes.query import Filter  # noqa: E402 - after the importorskip
from weaviate.classes.tenants import Tenant, TenantActivityStatus  # noqa: E402 - after the importorskip
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError  # noqa: E402 - after the importorskip

UTC = dt.UTC


def uid(i: int) -> uuid.UUID:
    return uuid.UUID(int=i * 7919 + 1)


@pytest.fixture
def client(weaviate_emu: WeaviateEmulator) -> Iterator[Any]:
    c = weaviate_emu.client()
    yield c
    c.close()


def test_schema_round_trip(client: Any) -> None:
    client.collections.create(
        "articles",  # the client capitalizes
        properties=[
            Property(name="Title", data_type=DataType.TEXT),  # the server lower-cases
            Property(name="count", data_type=DataType.INT),
            Property(name="tags", data_type=DataType.TEXT_ARRAY),
            Property(name="when", data_type=DataType.DATE),
            Property(name="meta2", data_type=DataType.OBJECT,
                     nested_properties=[Property(name="score", data_type=DataType.NUMBER)]),
        ],
        vector_config=[
            Configure.Vectors.self_provided(
                name="text", vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.DOT)),
            Configure.Vectors.self_provided(
                name="image", vector_index_config=Configure.VectorIndex.flat(distance_metric=VectorDistances.L2_SQUARED)),
        ])
    cfg = client.collections.get("Articles").config.get()
    assert cfg.name == "Articles"
    props = {p.name: p for p in cfg.properties}
    assert set(props) == {"title", "count", "tags", "when", "meta2"}
    assert props["title"].data_type == DataType.TEXT and props["title"].index_searchable
    assert props["count"].data_type == DataType.INT and not props["count"].index_searchable
    assert props["meta2"].nested_properties[0].name == "score"
    assert cfg.vector_config["text"].vector_index_config.distance_metric == VectorDistances.DOT
    assert cfg.vector_config["image"].vector_index_config.distance_metric == VectorDistances.L2_SQUARED
    assert list(client.collections.list_all()) == ["Articles"]
    client.collections.delete("Articles")
    assert not client.collections.exists("Articles")


@pytest.mark.parametrize("name, props, fragment", [
    ("my-docs", [], "not a valid class name"),
    ("Docs", [Property(name="_id", data_type=DataType.TEXT)], "reserved property name"),
    ("Docs", [Property(name="a-b", data_type=DataType.TEXT)], "not a valid property name"),
    ("Docs", [Property(name="Name", data_type=DataType.TEXT),
              Property(name="name", data_type=DataType.INT)], "already exists"),
])
def test_naming_rules_refused(client: Any, name: str, props: list[Any], fragment: str) -> None:
    with pytest.raises(UnexpectedStatusCodeError, match=fragment) as err:
        client.collections.create(name, properties=props)
    assert err.value.status_code == 422


def test_collection_names_unique_case_insensitively(client: Any) -> None:
    client.collections.create("Docs")
    with pytest.raises(UnexpectedStatusCodeError, match="already exists"):
        client.collections.create("DOCS")


def test_insert_many_iterator_after_and_fetch(client: Any) -> None:
    col = client.collections.create("Docs", properties=[Property(name="n", data_type=DataType.INT)])
    objs = [DataObject(properties={"n": i}, uuid=uid(i), vector=[float(i), 1.0, 0.5, -2.0])
            for i in range(250)]
    res = col.data.insert_many(objs)
    assert not res.has_errors and len(col) == 250
    seen = [(o.uuid, o.properties["n"], o.vector["default"]) for o in col.iterator(include_vector=True)]
    assert [s[0] for s in seen] == sorted(uid(i) for i in range(250))  # uuid order, no repeats
    assert {s[1] for s in seen} == set(range(250)) and all(isinstance(s[1], int) for s in seen)
    by_id = {s[0]: s for s in seen}
    assert by_id[uid(3)][2] == [3.0, 1.0, 0.5, -2.0]
    middle = seen[100][0]
    rest = list(col.iterator(after=middle))
    assert [o.uuid for o in rest] == [s[0] for s in seen[101:]]
    one = col.query.fetch_object_by_id(uid(42), include_vector=True)
    assert one is not None and one.properties["n"] == 42 and one.vector["default"][0] == 42.0
    assert col.query.fetch_object_by_id(uuid.uuid4()) is None
    got = col.query.fetch_objects_by_ids([uid(1), uid(2), uuid.uuid4()])
    assert {o.uuid for o in got.objects} == {uid(1), uid(2)}


def test_delete_and_exists(client: Any) -> None:
    col = client.collections.create("Docs")
    col.data.insert_many([DataObject(properties={"a": "x"}, uuid=uid(i), vector=[1.0, 2.0]) for i in range(10)])
    assert col.data.exists(uid(0))
    assert col.data.delete_by_id(uid(0))
    assert not col.data.exists(uid(0))
    res = col.data.delete_many(where=Filter.by_id().contains_any([uid(1), uid(2), uuid.uuid4()]))
    assert (res.matches, res.successful) == (2, 2)
    assert len(col) == 7


def test_auto_schema_types_like_the_server(client: Any) -> None:
    col = client.collections.create("Docs", properties=[Property(name="typed", data_type=DataType.INT)])
    col.data.insert_many([DataObject(properties={
        "typed": 5, "untyped": 5, "ints": [1, 2], "day": "2024-05-01T10:00:00Z",
        "ref": str(uid(9)), "word": "hello", "obj": {"k": 1}}, uuid=uid(1))])
    props = {p.name: p.data_type for p in col.config.get().properties}
    # ints inside the protobuf Struct arrive as doubles: auto-schema makes them numbers
    assert props["untyped"] == DataType.NUMBER and props["typed"] == DataType.INT
    assert props["ints"] == DataType.INT_ARRAY  # typed int64 arrays stay ints
    assert props["day"] == DataType.DATE and props["ref"] == DataType.UUID
    assert props["word"] == DataType.TEXT and props["obj"] == DataType.OBJECT
    obj = col.query.fetch_object_by_id(uid(1))
    assert obj.properties["typed"] == 5 and isinstance(obj.properties["untyped"], float)
    assert obj.properties["day"] == dt.datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_type_errors_fail_single_objects(client: Any) -> None:
    col = client.collections.create("Docs", properties=[Property(name="n", data_type=DataType.INT)])
    res = col.data.insert_many([DataObject(properties={"n": 1}, uuid=uid(1)),
                                DataObject(properties={"n": 1.5}, uuid=uid(2))])
    assert list(res.errors) == [1] and "invalid integer property" in res.errors[1].message
    assert len(col) == 1


def test_vector_dimension_enforced(client: Any) -> None:
    col = client.collections.create("Docs")
    res = col.data.insert_many([DataObject(uuid=uid(1), vector=[1.0, 2.0]),
                                DataObject(uuid=uid(2), vector=[1.0, 2.0, 3.0])])
    assert list(res.errors) == [1] and "length" in res.errors[1].message


def test_named_vectors_round_trip(client: Any) -> None:
    col = client.collections.create("Docs", vector_config=[
        Configure.Vectors.self_provided(name="a"), Configure.Vectors.self_provided(name="b")])
    col.data.insert_many([DataObject(uuid=uid(1), vector={"a": [1.0, 2.0], "b": [3.0, 4.0, 5.0]})])
    obj = col.query.fetch_object_by_id(uid(1), include_vector=True)
    assert obj.vector == {"a": [1.0, 2.0], "b": [3.0, 4.0, 5.0]}
    only_b = col.query.fetch_objects(include_vector=["b"]).objects[0]
    assert only_b.vector == {"b": [3.0, 4.0, 5.0]}


def test_tenants(client: Any) -> None:
    col = client.collections.create("Docs", multi_tenancy_config=Configure.multi_tenancy(enabled=True))
    col.tenants.create([Tenant(name="t1"), Tenant(name="t2"),
                        Tenant(name="cold", activity_status=TenantActivityStatus.INACTIVE)])
    assert set(col.tenants.get()) == {"t1", "t2", "cold"}
    assert col.tenants.get()["cold"].activity_status == TenantActivityStatus.INACTIVE
    col.with_tenant("t1").data.insert_many([DataObject(uuid=uid(i), vector=[1.0]) for i in range(3)])
    assert len(col.with_tenant("t1")) == 3 and len(col.with_tenant("t2")) == 0
    with pytest.raises(WeaviateQueryError, match="multi-tenancy enabled"):
        col.query.fetch_objects()
    with pytest.raises(WeaviateQueryError, match="not active"):
        col.with_tenant("cold").query.fetch_objects()
    col.tenants.remove(["t1"])
    assert set(col.tenants.get()) == {"t2", "cold"}


def test_per_object_fault_ids(client: Any, weaviate_emu: WeaviateEmulator) -> None:
    col = client.collections.create("Docs")
    weaviate_emu.faults.object_fail_ids = {str(uid(2)), str(uid(5))}
    res = col.data.insert_many([DataObject(uuid=uid(i), vector=[1.0]) for i in range(8)])
    assert sorted(res.errors) == [2, 5] and "injected" in res.errors[2].message
    assert len(col) == 6


def test_object_fault_rate_is_seeded(weaviate_emu: WeaviateEmulator) -> None:
    def failing(seed: int) -> list[int]:
        faults = Faults(seed=seed, object_fail_rate=0.3)
        return [i for i in range(200) if faults.object_fault(str(uid(i)))]

    assert failing(7) == failing(7)
    assert failing(7) != failing(8)
    assert 30 < len(failing(7)) < 90


def test_unavailable_is_retried_by_the_client(client: Any, weaviate_emu: WeaviateEmulator) -> None:
    col = client.collections.create("Docs")
    weaviate_emu.faults.fail_next = ["UNAVAILABLE"]
    res = col.data.insert_many([DataObject(uuid=uid(1), vector=[1.0])])
    assert not res.has_errors and weaviate_emu.faults.injected == 1
    weaviate_emu.faults.fail_next = ["RESOURCE_EXHAUSTED"]
    with pytest.raises(Exception, match="resource_exhausted"):
        col.query.fetch_objects()


def test_unavailable_rate_fires_and_can_be_switched_off(client: Any, weaviate_emu: WeaviateEmulator) -> None:
    col = client.collections.create("Docs")
    weaviate_emu.faults.unavailable_rate, weaviate_emu.faults.methods = 1.0, frozenset({"Search"})
    with pytest.raises(WeaviateQueryError):
        col.query.fetch_objects()
    weaviate_emu.faults.unavailable_rate = 0.0
    assert col.query.fetch_objects().objects == []


def test_rest_faults_and_latency(client: Any, weaviate_emu: WeaviateEmulator) -> None:
    weaviate_emu.faults.http_fail_next = [503]
    with pytest.raises(UnexpectedStatusCodeError) as err:
        client.collections.list_all()
    assert err.value.status_code == 503
    weaviate_emu.faults.latency_s = 0.01
    assert client.collections.list_all() == {}


def test_api_key_enforced() -> None:
    with WeaviateEmulator(api_key="right-key") as weaviate_emu:
        good = weaviate_emu.client(api_key="right-key")
        good.collections.create("Docs")
        assert good.collections.exists("Docs")
        good.close()
        with pytest.raises(Exception, match="401"):
            weaviate_emu.client(api_key="wrong-key")


def test_grpc_health_check(weaviate_emu: WeaviateEmulator) -> None:
    import grpc
    from weaviate.proto.v1 import health_weaviate_pb2 as h

    with grpc.insecure_channel(f"127.0.0.1:{weaviate_emu.grpc_port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=h.WeaviateHealthCheckRequest.SerializeToString,
                                    response_deserializer=h.WeaviateHealthCheckResponse.FromString)
        assert check(h.WeaviateHealthCheckRequest(), timeout=5).status == h.WeaviateHealthCheckResponse.SERVING


def test_faults_configured_at_start() -> None:
    faults = Faults(seed=1, object_fail_ids={str(uid(1))}, http_fail_next=[500])
    with WeaviateEmulator(faults=faults) as weaviate_emu:
        with pytest.raises(UnexpectedStatusCodeError, match="500"):
            weaviate_emu.client()  # the first REST call (GET /v1/meta) answers 500
        c = weaviate_emu.client()
        col = c.collections.create("Docs")
        res = col.data.insert_many([DataObject(uuid=uid(i), vector=[1.0]) for i in range(3)])
        assert list(res.errors) == [1] and weaviate_emu.faults.injected == 2
        c.close()
