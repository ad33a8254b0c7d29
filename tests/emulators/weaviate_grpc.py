"""gRPC side of the Weaviate emulator, served with the stubs that ship inside weaviate-client
(``weaviate.proto.v1`` picks the folder matching the installed protobuf)."""

from __future__ import annotations

import bisect
import logging
import struct
import time
import uuid as uuid_lib
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import struct_pb2
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from .weaviate_store import Collection, Store, StoredObject, StoreError

log = logging.getLogger(__name__)
F = base_pb2.Filters
SINGLE, MULTI = base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32, base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32
_CODES = {"invalid": grpc.StatusCode.INVALID_ARGUMENT, "not_found": grpc.StatusCode.NOT_FOUND,
          "conflict": grpc.StatusCode.ALREADY_EXISTS}
_STATUS = {"HOT": tenants_pb2.TENANT_ACTIVITY_STATUS_HOT, "COLD": tenants_pb2.TENANT_ACTIVITY_STATUS_COLD,
           "FROZEN": tenants_pb2.TENANT_ACTIVITY_STATUS_FROZEN,
           "FREEZING": tenants_pb2.TENANT_ACTIVITY_STATUS_FREEZING,
           "UNFREEZING": tenants_pb2.TENANT_ACTIVITY_STATUS_UNFREEZING}


# -- requests -> python -----------------------------------------------------------------------
def _from_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _from_value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_from_value(x) for x in v.list_value.values]
    return None if kind in (None, "null_value") else getattr(v, kind)  # numbers stay float64


def from_batch_props(p: Any) -> dict[str, Any]:
    """BatchObject.Properties / ObjectPropertiesValue -> plain dict (typed arrays kept typed)."""
    out = {k: _from_value(x) for k, x in p.non_ref_properties.fields.items()}
    for a in p.number_array_properties:
        vb = a.values_bytes
        out[a.prop_name] = list(struct.unpack(f"<{len(vb) // 8}d", vb)) if vb else list(a.values)
    for arrays in (p.int_array_properties, p.text_array_properties, p.boolean_array_properties):
        out.update({a.prop_name: list(a.values) for a in arrays})
    for o in p.object_properties:
        out[o.prop_name] = from_batch_props(o.value)
    for oa in p.object_array_properties:
        out[oa.prop_name] = [from_batch_props(v) for v in oa.values]
    out.update({name: [] for name in p.empty_list_props})
    return out


def _batch_vectors(o: batch_pb2.BatchObject) -> dict[str, tuple[int, bytes]]:
    vecs = {v.name: (v.type or SINGLE, v.vector_bytes) for v in o.vectors}
    if o.vector_bytes:
        vecs[""] = (SINGLE, o.vector_bytes)
    elif len(o.vector):
        vecs[""] = (SINGLE, struct.pack(f"<{len(o.vector)}f", *o.vector))
    return vecs


# -- python -> replies ------------------------------------------------------------------------
def to_value(v: Any, prop: dict[str, Any]) -> properties_pb2.Value:
    dt = prop["dataType"][0]
    P = properties_pb2
    if v is None:
        return P.Value(null_value=struct_pb2.NULL_VALUE)
    if dt == "object":
        return P.Value(object_value=_props(v, prop["nestedProperties"]))
    if dt == "object[]":
        return P.Value(list_value=P.ListValue(object_values=P.ObjectValues(
            values=[_props(x, prop["nestedProperties"]) for x in v])))
    if dt.endswith("[]"):
        base = dt[:-2]
        if base == "int":
            lv = P.ListValue(int_values=P.IntValues(values=struct.pack(f"<{len(v)}q", *v)))
        elif base == "number":
            lv = P.ListValue(number_values=P.NumberValues(values=struct.pack(f"<{len(v)}d", *v)))
        else:
            field, msg = {"text": ("text_values", P.TextValues), "boolean": ("bool_values", P.BoolValues),
                          "date": ("date_values", P.DateValues), "uuid": ("uuid_values", P.UuidValues)}[base]
            lv = P.ListValue(**{field: msg(values=v)})
        return P.Value(list_value=lv)
    if dt == "geoCoordinates":
        return P.Value(geo_value=P.GeoCoordinate(latitude=v["latitude"], longitude=v["longitude"]))
    if dt == "phoneNumber":
        return P.Value(phone_value=P.PhoneNumber(input=v["input"], default_country=v["defaultCountry"]))
    field = {"text": "text_value", "int": "int_value", "number": "number_value", "boolean": "bool_value",
             "date": "date_value", "uuid": "uuid_value", "blob": "blob_value"}[dt]
    return P.Value(**{field: v})


def _props(values: dict[str, Any], schema: list[dict[str, Any]]) -> properties_pb2.Properties:
    by_name = {p["name"]: p for p in schema}
    return properties_pb2.Properties(
        fields={k: to_value(x, by_name[k]) for k, x in values.items() if k in by_name})


def _selected(req: search_get_pb2.SearchRequest, coll: Collection) -> list[dict[str, Any]]:
    props = coll.schema["properties"]
    if not req.HasField("properties") or req.properties.return_all_nonref_properties:
        return props
    wanted = set(req.properties.non_ref_properties) | {o.prop_name for o in req.properties.object_properties}
    return [p for p in props if p["name"] in wanted]


def _result(obj: StoredObject, coll: Collection, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchResult:
    # Every selected schema property comes back; unset ones as null (server >= 1.24).
    fields = {p["name"]: to_value(obj.props.get(p["name"]), p) for p in _selected(req, coll)}
    meta = search_get_pb2.MetadataResult(id=obj.uuid, id_as_bytes=uuid_lib.UUID(obj.uuid).bytes)
    md = req.metadata
    # vector=True asks for every vector: named ones come in ``vectors``, the legacy one in
    # ``vector_bytes`` (adapters/handlers/grpc/v1 prepare_reply: additionalProps "vector"), so for a
    # legacy collection with named vectors added later the SDK sees only the legacy vector.
    mixed = coll.legacy and coll.named
    names = ([n for n in obj.vectors if not (mixed and n == "default")] if md.vector
             else [n for n in md.vectors if n in obj.vectors])
    for name in names:
        vtype, data = obj.vectors[name]
        meta.vectors.append(base_pb2.Vectors(name=name, vector_bytes=data, type=vtype))
    if md.vector and coll.legacy and "default" in obj.vectors:
        meta.vector_bytes = obj.vectors["default"][1]
    if md.creation_time_unix:
        meta.creation_time_unix, meta.creation_time_unix_present = obj.created_ms, True
    if md.last_update_time_unix:
        meta.last_update_time_unix, meta.last_update_time_unix_present = obj.updated_ms, True
    if md.is_consistent:
        meta.is_consistent, meta.is_consistent_present = True, True
    return search_get_pb2.SearchResult(
        metadata=meta, properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields=fields), target_collection=coll.name))


# -- filters ----------------------------------------------------------------------------------
def _filter_value(f: base_pb2.Filters) -> Any:
    kind = f.WhichOneof("test_value")
    if kind is None:
        return None
    v = getattr(f, kind)
    return list(v.values) if kind.endswith("_array") else v


def matches(f: base_pb2.Filters, obj: StoredObject) -> bool:
    op = f.operator
    if op == F.OPERATOR_AND:
        return all(matches(c, obj) for c in f.filters)
    if op == F.OPERATOR_OR:
        return any(matches(c, obj) for c in f.filters)
    if op == F.OPERATOR_NOT:
        return not any(matches(c, obj) for c in f.filters)
    path = f.target.property if f.HasField("target") else (f.on[0] if f.on else "")
    if not path:
        raise StoreError("filter without a target property is not supported by the emulator")
    have = obj.uuid if path == "_id" else obj.props.get(path)
    want = _filter_value(f)
    if path == "_id":
        want = [str(uuid_lib.UUID(w)) for w in want] if isinstance(want, list) else str(uuid_lib.UUID(want))
    if op == F.OPERATOR_IS_NULL:
        return (have is None) == bool(want)
    if have is None:
        return op == F.OPERATOR_NOT_EQUAL
    items = have if isinstance(have, list) else [have]
    ops: dict[int, Callable[[], bool]] = {
        F.OPERATOR_EQUAL: lambda: have == want, F.OPERATOR_NOT_EQUAL: lambda: have != want,
        F.OPERATOR_GREATER_THAN: lambda: have > want, F.OPERATOR_GREATER_THAN_EQUAL: lambda: have >= want,
        F.OPERATOR_LESS_THAN: lambda: have < want, F.OPERATOR_LESS_THAN_EQUAL: lambda: have <= want,
        F.OPERATOR_CONTAINS_ANY: lambda: any(i in want for i in items),
        F.OPERATOR_CONTAINS_ALL: lambda: all(w in items for w in want),
        F.OPERATOR_CONTAINS_NONE: lambda: not any(i in want for i in items),
    }
    if op not in ops:
        raise StoreError(f"filter operator {F.Operator.Name(op)} is not supported by the emulator")
    return ops[op]()


class WeaviateServicer(weaviate_pb2_grpc.WeaviateServicer):
    """``weaviate.v1.Weaviate`` over the shared Store; ``guard`` applies auth and faults."""

    def __init__(self, store: Store, guard: Callable[[str, grpc.ServicerContext], None],
                 object_fault: Callable[[str], str | None],
                 batch_fault: Callable[[], str | None] = lambda: None) -> None:
        self.store, self.guard, self.object_fault = store, guard, object_fault
        self.batch_fault = batch_fault  # a message every object of this BatchObjects call fails with
        self.calls: list[tuple[str, int]] = []  # (method, consistency level) per data call, for tests
        self.tenant_lists = 0  # TenantsGet calls

    def _run(self, method: str, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        self.guard(method, context)
        try:
            with self.store.lock:
                return fn()
        except StoreError as exc:
            context.abort(_CODES[exc.kind], str(exc))

    def Search(self, req: search_get_pb2.SearchRequest, context: grpc.ServicerContext) -> Any:
        self.calls.append(("Search", req.consistency_level))
        return self._run("Search", context, lambda: self._search(req))

    def _search(self, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        start = time.perf_counter()
        coll = self.store.get(req.collection)
        shard = coll.shard(req.tenant)
        if req.after and (req.HasField("filters") or req.sort_by or req.offset):
            raise StoreError("cursor api: invalid 'after' parameter: other params cannot be set "
                             "along with after: filters, sort, offset")
        ids = coll.sorted_ids(req.tenant)
        if req.after:
            ids = ids[bisect.bisect_right(ids, str(uuid_lib.UUID(req.after))):]
        objs = (shard[i] for i in ids)
        if req.HasField("filters"):
            objs = (o for o in objs if matches(req.filters, o))
        limit = req.limit or 10  # QUERY_DEFAULTS_LIMIT
        picked = [o for _, o in zip(range(req.offset + limit), objs)][req.offset:]
        return search_get_pb2.SearchReply(took=time.perf_counter() - start,
                                          results=[_result(o, coll, req) for o in picked])

    def BatchObjects(self, req: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext) -> Any:
        self.calls.append(("BatchObjects", req.consistency_level))
        return self._run("BatchObjects", context, lambda: self._batch(req))

    def _batch(self, req: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        errors = []
        episode = self.batch_fault()  # e.g. the shard switched read-only: every object fails
        for i, o in enumerate(req.objects):
            reason = episode or self.object_fault(o.uuid)  # per-object failure inside a good batch
            try:
                if reason:
                    raise StoreError(reason)
                self.store.put_object(o.collection, o.tenant, o.uuid, from_batch_props(o.properties),
                                      _batch_vectors(o))
            except StoreError as exc:
                errors.append(batch_pb2.BatchObjectsReply.BatchError(index=i, error=str(exc)))
        return batch_pb2.BatchObjectsReply(took=0.0, errors=errors)

    def BatchDelete(self, req: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext) -> Any:
        self.calls.append(("BatchDelete", req.consistency_level))

        def run() -> batch_delete_pb2.BatchDeleteReply:
            coll = self.store.get(req.collection)
            shard = coll.shard(req.tenant)
            hit = [o.uuid for o in shard.values() if matches(req.filters, o)]
            if not req.dry_run:
                self.store.delete_ids(req.collection, req.tenant, hit)
            objs = [batch_delete_pb2.BatchDeleteObject(uuid=uuid_lib.UUID(u).bytes, successful=True)
                    for u in hit] if req.verbose else []
            return batch_delete_pb2.BatchDeleteReply(matches=len(hit), successful=len(hit), objects=objs)
        return self._run("BatchDelete", context, run)

    def TenantsGet(self, req: tenants_pb2.TenantsGetRequest, context: grpc.ServicerContext) -> Any:
        self.tenant_lists += 1

        def run() -> tenants_pb2.TenantsGetReply:
            coll = self.store.get(req.collection)
            if not coll.multi_tenant:
                raise StoreError(f"multi-tenancy is not enabled for class {coll.name!r}")
            names = list(req.names.values) if req.HasField("names") else sorted(coll.tenants)
            return tenants_pb2.TenantsGetReply(tenants=[
                tenants_pb2.Tenant(name=n, activity_status=_STATUS[coll.tenant_status(n) or "HOT"])
                for n in names if n in coll.tenants])
        return self._run("TenantsGet", context, run)

    def Aggregate(self, req: aggregate_pb2.AggregateRequest, context: grpc.ServicerContext) -> Any:
        def run() -> aggregate_pb2.AggregateReply:
            if req.aggregations or req.HasField("group_by"):
                raise StoreError("only objects_count aggregation is supported by the emulator")
            coll = self.store.get(req.collection)
            objs = list(coll.shard(req.tenant).values())
            if req.HasField("filters"):
                objs = [o for o in objs if matches(req.filters, o)]
            return aggregate_pb2.AggregateReply(
                single_result=aggregate_pb2.AggregateReply.Single(objects_count=len(objs)))
        return self._run("Aggregate", context, run)


def health_handler(guard: Callable[[str, grpc.ServicerContext], None]) -> grpc.GenericRpcHandler:
    def check(_req: Any, context: grpc.ServicerContext) -> Any:
        guard("Health", context)
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING)
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
            response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString)})
