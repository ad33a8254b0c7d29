"""State of the Weaviate emulator: collections normalized the way the server returns them,
objects per tenant, naming rules, value coercion and auto-schema (ported from the server's
``usecases/objects/auto_schema.go`` rules). Transport-free: REST and gRPC layers call into it.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid as uuid_lib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CLASS_RE = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
PROP_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
TENANT_RE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
RESERVED = ("_additional", "_id", "id")
# Endings refused for NEW property names since 2026-05 (entities/schema/validation.go): the
# server's inverted-index buckets carry them (property_<name>_searchable, ..._nullState).
RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
DISTANCES = ("cosine", "dot", "l2-squared", "manhattan", "hamming")
SCALARS = ("text", "int", "number", "boolean", "date", "uuid", "object")
TYPES = {*SCALARS, *(t + "[]" for t in SCALARS), "geoCoordinates", "phoneNumber", "blob"}
_DATE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)

HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128,
    "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1000000000000, "flatSearchCutoff": 40000, "distance": "cosine",
    "filterStrategy": "sweeping", "pq": {"enabled": False}, "bq": {"enabled": False},
    "sq": {"enabled": False}, "rq": {"enabled": False},
    "multivector": {"enabled": False, "aggregation": "maxSim"},
}
FLAT_DEFAULTS: dict[str, Any] = {
    "distance": "cosine", "vectorCacheMaxObjects": 1000000000000,
    "pq": {"enabled": False}, "bq": {"enabled": False}, "sq": {"enabled": False},
}
INVERTED_DEFAULTS: dict[str, Any] = {
    "bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
    "stopwords": {"preset": "en", "additions": None, "removals": None},
    "indexNullState": False, "indexPropertyLength": False, "indexTimestamps": False,
    "usingBlockMaxWAND": True,
}


class StoreError(Exception):
    """A request the server refuses; ``kind`` picks the HTTP status / gRPC code."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind  # invalid | not_found | conflict


def lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def _merge(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in (given or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        elif v is not None:
            out[k] = v
    return out


def _index_config(kind: str, given: dict[str, Any] | None) -> dict[str, Any]:
    if kind not in ("hnsw", "flat"):
        raise StoreError(f"vector index type {kind!r} is not supported by this emulator")
    cfg = _merge(HNSW_DEFAULTS if kind == "hnsw" else FLAT_DEFAULTS, given)
    if cfg["distance"] not in DISTANCES:
        raise StoreError(f"unrecognized or unsupported distance metric {cfg['distance']!r}")
    return cfg


def normalize_property(p: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    name = p.get("name") or ""
    if not nested:
        name = lower_first(name)
    if not PROP_RE.match(name):
        kind = "nested property" if nested else "property"
        raise StoreError(f"'{name}' is not a valid {kind} name. Property names in Weaviate are "
                         "restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]*/”.")
    if not nested and name in RESERVED:
        raise StoreError(f"'{name}' is a reserved property name")
    suffix = next((x for x in RESERVED_SUFFIXES if name.endswith(x)), None)
    if not nested and suffix:
        raise StoreError(f"'{name}' is not a valid property name: the suffix {suffix} is reserved")
    dt = list(p.get("dataType") or [])
    if len(dt) != 1 or dt[0] not in TYPES:
        raise StoreError(f"property '{name}': invalid dataType {dt} (cross-references unsupported)")
    text = dt[0] in ("text", "text[]")
    out: dict[str, Any] = {"name": name, "dataType": dt, "description": p.get("description", ""),
                           "indexFilterable": p.get("indexFilterable", dt[0] != "blob"),
                           "indexSearchable": p.get("indexSearchable", text)}
    if not nested:
        out["indexRangeFilters"] = p.get("indexRangeFilters", False)
    if text:
        out["tokenization"] = p.get("tokenization") or "word"
    if dt[0] in ("object", "object[]"):
        children = p.get("nestedProperties") or []
        if not children:
            raise StoreError(f"property '{name}': at least one nested property is required "
                             f"for data type {dt[0]}")
        out["nestedProperties"] = [normalize_property(c, nested=True) for c in children]
        _check_duplicates(out["nestedProperties"])
    return out


def _check_duplicates(props: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for p in props:
        if p["name"].lower() in seen:  # the server compares property names case-insensitively
            raise StoreError(f"property '{p['name']}' already exists (names are case-insensitive)")
        seen.add(p["name"].lower())


def normalize_class(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("class") or ""
    name = name[:1].upper() + name[1:]  # the server capitalizes, then validates
    if not CLASS_RE.match(name):
        raise StoreError(f"'{name}' is not a valid class name")
    mt = _merge({"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False},
                body.get("multiTenancyConfig"))
    cls: dict[str, Any] = {
        "class": name, "description": body.get("description", ""),
        "invertedIndexConfig": _merge(INVERTED_DEFAULTS, body.get("invertedIndexConfig")),
        "multiTenancyConfig": mt, "moduleConfig": body.get("moduleConfig") or {},
        "properties": [normalize_property(p) for p in body.get("properties") or []],
        "replicationConfig": _merge({"factor": 1, "asyncEnabled": False,
                                     "deletionStrategy": "NoAutomatedResolution"},
                                    body.get("replicationConfig")),
        "shardingConfig": _merge({"virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1,
                                  "desiredVirtualCount": 128, "actualVirtualCount": 128,
                                  "key": "_id", "strategy": "hash", "function": "murmur3"},
                                 None if mt["enabled"] else body.get("shardingConfig")),
    }
    _check_duplicates(cls["properties"])
    if body.get("vectorConfig"):
        cls["vectorConfig"] = {}
        for vname, vc in body["vectorConfig"].items():
            if not PROP_RE.match(vname):
                raise StoreError(f"'{vname}' is not a valid target vector name")
            vectorizer = vc.get("vectorizer") or {"none": {}}
            if list(vectorizer) != ["none"]:
                raise StoreError(f"vectorizer {list(vectorizer)} is not available (no modules)")
            kind = vc.get("vectorIndexType") or "hnsw"
            cls["vectorConfig"][vname] = {"vectorizer": {"none": {}}, "vectorIndexType": kind,
                                          "vectorIndexConfig": _index_config(kind, vc.get("vectorIndexConfig"))}
    else:
        if body.get("vectorizer", "none") != "none":
            raise StoreError(f"vectorizer {body['vectorizer']!r} is not available (no modules)")
        kind = body.get("vectorIndexType") or "hnsw"
        cls.update(vectorizer="none", vectorIndexType=kind,
                   vectorIndexConfig=_index_config(kind, body.get("vectorIndexConfig")))
    return cls


def parse_date(value: str) -> str:
    """RFC3339 -> the server's RFC3339Nano rendering (fraction trimmed, ``Z`` for UTC)."""
    m = _DATE_RE.match(value)
    if not m:
        raise ValueError(value)
    datetime.fromisoformat(f"{m[1]}T{m[2]}")  # range check of date and time fields
    frac = (m[3] or "").rstrip("0").rstrip(".")
    tz = "Z" if m[4].upper() in ("Z", "+00:00") else m[4]
    return f"{m[1]}T{m[2]}{frac}{tz}"


def canonical_uuid(value: str) -> str:
    return str(uuid_lib.UUID(value))


@dataclass
class StoredObject:
    uuid: str
    props: dict[str, Any]
    vectors: dict[str, tuple[int, bytes]]  # name -> (Vectors.VectorType, little-endian bytes)
    created_ms: int
    updated_ms: int


@dataclass
class Collection:
    schema: dict[str, Any]
    shards: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)  # name -> activity status
    dims: dict[str, int] = field(default_factory=dict)
    _sorted: dict[str, list[str]] = field(default_factory=dict)
    woken: list[str] = field(default_factory=list)  # tenants autoTenantActivation loaded, in order
    moving: dict[str, tuple[str, int]] = field(default_factory=dict)  # tenant -> (end state, reads left)
    changes: list[tuple[str, str]] = field(default_factory=list)  # (tenant, status asked for) updates

    @property
    def name(self) -> str:
        return str(self.schema["class"])

    @property
    def multi_tenant(self) -> bool:
        return bool(self.schema["multiTenancyConfig"]["enabled"])

    @property
    def named(self) -> bool:
        return "vectorConfig" in self.schema

    @property
    def legacy(self) -> bool:
        """A legacy (unnamed) vector, alone or with named vectors added later."""
        return "vectorIndexConfig" in self.schema

    def vector_names(self) -> list[str]:
        return (["default"] if self.legacy else []) + list(self.schema.get("vectorConfig", {}))

    def prop(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.schema["properties"] if p["name"] == name), None)

    def shard(self, tenant: str, create: bool = False) -> dict[str, StoredObject]:
        """The objects of one tenant, checked the way the server checks tenant use."""
        if not self.multi_tenant:
            if tenant:
                raise StoreError(f"class {self.name} has multi-tenancy disabled, but request was "
                                 f"with tenant {tenant!r}")
            return self.shards.setdefault("", {})
        if not tenant:
            raise StoreError(f"class {self.name} has multi-tenancy enabled, but request was "
                             "without tenant")
        if tenant not in self.tenants:
            if not (create and self.schema["multiTenancyConfig"]["autoTenantCreation"]):
                raise StoreError(f"tenant not found: {tenant!r}", "not_found")
            self.tenants[tenant] = "HOT"
        if self.tenants[tenant] == "COLD" and self.schema["multiTenancyConfig"]["autoTenantActivation"]:
            self.tenants[tenant] = "HOT"  # autoTenantActivation: the read loads it, and it stays loaded
            self.woken.append(tenant)
        if self.tenants[tenant] not in ("HOT", "ACTIVE"):
            raise StoreError(f"tenant not active: {tenant!r} is {self.tenants[tenant]}")
        return self.shards.setdefault(tenant, {})

    def tenant_status(self, tenant: str) -> str | None:
        """A tenant's status as a status read reports it; each read moves a tenant in
        transition (FREEZING, UNFREEZING) one step nearer its end state."""
        moving = self.moving.get(tenant)
        if moving is not None:
            end, left = moving
            if left <= 0:
                self.tenants[tenant] = end
                del self.moving[tenant]
            else:
                self.moving[tenant] = (end, left - 1)
        return self.tenants.get(tenant)

    def sorted_ids(self, tenant: str) -> list[str]:
        if tenant not in self._sorted:
            self._sorted[tenant] = sorted(self.shards.get(tenant, {}))
        return self._sorted[tenant]

    def touched(self, tenant: str) -> None:
        self._sorted.pop(tenant, None)


class Store:
    """All collections. One lock: the REST threads and gRPC workers share this state."""

    def __init__(self, autoschema: bool = True) -> None:
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.autoschema = autoschema
        # Status reads a tenant spends in FREEZING / UNFREEZING when offloaded or onloaded
        # (counted in calls, not seconds).
        self.transition_reads = 2

    def reset(self) -> None:
        with self.lock:
            self.collections.clear()

    def get(self, name: str) -> Collection:
        coll = self.collections.get(name)
        if coll is None:
            raise StoreError(f"could not find class {name} in schema", "not_found")
        return coll

    def create_class(self, body: dict[str, Any]) -> dict[str, Any]:
        cls = normalize_class(body)
        with self.lock:
            for other in self.collections:
                if other.lower() == cls["class"].lower():
                    raise StoreError(f"class name {cls['class']!r} already exists "
                                     f"(found similar class {other!r})", "conflict")
            self.collections[cls["class"]] = Collection(cls)
        return copy.deepcopy(cls)

    def add_property(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        prop = normalize_property(body)
        with self.lock:
            coll = self.get(name)
            _check_duplicates(coll.schema["properties"] + [prop])
            coll.schema["properties"].append(prop)
        return copy.deepcopy(prop)

    def add_named_vector(self, name: str, vector: str, distance: str = "cosine") -> None:
        """A named vector added to an existing collection (``PUT /v1/schema/{class}`` with a
        new ``vectorConfig`` entry): a legacy collection then has both kinds."""
        with self.lock:
            coll = self.get(name)
            if vector in coll.vector_names():
                raise StoreError(f"vector {vector!r} already exists in class {name}")
            coll.schema.setdefault("vectorConfig", {})[vector] = {
                "vectorizer": {"none": {}}, "vectorIndexType": "hnsw",
                "vectorIndexConfig": _index_config("hnsw", {"distance": distance})}

    def drop_vector_index(self, name: str, vector: str) -> None:
        """``collection.config.delete_vector_index()``: the schema says ``vectorIndexType:
        "none"`` without a ``vectorIndexConfig`` while the cleanup removes the vector's data."""
        with self.lock:
            coll = self.get(name)
            coll.schema["vectorConfig"][vector] = {"vectorizer": {"none": {}}, "vectorIndexType": "none"}
            for shard in coll.shards.values():
                for obj in shard.values():
                    obj.vectors.pop(vector, None)

    def add_tenants(self, name: str, tenants: list[dict[str, Any]]) -> None:
        with self.lock:
            coll = self.get(name)
            if not coll.multi_tenant:
                raise StoreError(f"multi-tenancy is not enabled for class {name!r}")
            for t in tenants:
                if not TENANT_RE.match(t.get("name", "")):
                    raise StoreError(f"invalid tenant name {t.get('name')!r}")
                status = {"ACTIVE": "HOT", "INACTIVE": "COLD", "OFFLOADED": "FROZEN"}.get(
                    t.get("activityStatus") or "HOT", t.get("activityStatus") or "HOT")
                old = coll.tenants.get(t["name"])
                if old in ("FREEZING", "UNFREEZING"):
                    raise StoreError(f"tenant {t['name']!r} is {old}: its status cannot change now")
                coll.changes.append((t["name"], status))
                if old is not None and old != status and "FROZEN" in (old, status):
                    # offloading and onloading take a while: FREEZING / UNFREEZING first
                    coll.tenants[t["name"]] = "FREEZING" if status == "FROZEN" else "UNFREEZING"
                    coll.moving[t["name"]] = (status, self.transition_reads)
                else:
                    coll.tenants[t["name"]] = status

    def remove_tenants(self, name: str, names: list[str]) -> None:
        with self.lock:
            coll = self.get(name)
            for t in names:
                coll.tenants.pop(t, None)
                coll.shards.pop(t, None)
                coll.touched(t)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    # -- objects -------------------------------------------------------------------------------
    def put_object(self, coll_name: str, tenant: str, obj_id: str, props: dict[str, Any],
                   vectors: dict[str, tuple[int, bytes]]) -> None:
        """Validate, coerce and upsert one object; StoreError carries the per-object message."""
        with self.lock:
            coll = self.get(coll_name)
            shard = coll.shard(tenant, create=True)
            try:
                uid = canonical_uuid(obj_id)
            except ValueError:
                raise StoreError(f"invalid UUID {obj_id!r}") from None
            stored: dict[str, Any] = {}
            for raw_key, value in props.items():
                key = lower_first(raw_key)
                if not PROP_RE.match(key):
                    raise StoreError(f"'{raw_key}' is not a valid property name")
                if key in RESERVED:
                    raise StoreError(f"'{key}' is a reserved property name")
                if key in stored:
                    raise StoreError(f"property '{key}' given twice (names are case-insensitive)")
                prop = coll.prop(key) or self._auto_property(coll, key, value)
                if value is not None:
                    stored[key] = _coerce(value, prop, f"'{key}' on class '{coll.name}'", self)
            named = self._vectors(coll, vectors)
            now = self.now_ms()
            old = shard.get(uid)
            shard[uid] = StoredObject(uid, stored, named, old.created_ms if old else now, now)
            coll.touched(tenant)

    def _auto_property(self, coll: Collection, key: str, value: Any) -> dict[str, Any]:
        if not self.autoschema:
            raise StoreError(f"no such prop with name '{key}' found in class '{coll.name}' in the "
                             "schema. Check your schema files for which properties in this class "
                             "are available")
        for p in coll.schema["properties"]:
            if p["name"].lower() == key.lower():
                raise StoreError(f"property '{key}' collides with existing property '{p['name']}'")
        prop = normalize_property({"name": key, **auto_type(value, nested=False)})
        coll.schema["properties"].append(prop)
        return prop

    def _vectors(self, coll: Collection, vectors: dict[str, tuple[int, bytes]]) -> dict[str, tuple[int, bytes]]:
        out: dict[str, tuple[int, bytes]] = {}
        names = coll.vector_names()
        for name, (vtype, data) in vectors.items():
            if name == "" and (len(names) == 1 or coll.legacy):
                name = names[0]  # an unnamed vector goes to the legacy (or only) vector space
            if name not in names:
                raise StoreError(f"collection {coll.name} has no vector named {name or 'default'!r}"
                                 f" (configured: {names})")
            dim = len(data) // 4 if vtype != 2 else int.from_bytes(data[:2], "little")
            known = coll.dims.setdefault(name, dim)
            if known != dim:
                raise StoreError(f"new node has a vector with length {dim}. Existing nodes have "
                                 f"vectors with length {known}")
            out[name] = (vtype, data)
        return out

    def delete_ids(self, coll_name: str, tenant: str, ids: list[str]) -> int:
        with self.lock:
            coll = self.get(coll_name)
            shard = coll.shard(tenant)
            n = sum(1 for i in ids if shard.pop(i, None) is not None)
            coll.touched(tenant)
            return n


def _gotype(v: Any) -> str:
    return {str: "string", bool: "bool", int: "int64", float: "float64", dict: "map[string]interface {}",
            list: "[]interface {}"}.get(type(v), type(v).__name__)


def _coerce(v: Any, prop: dict[str, Any], where: str, store: Store) -> Any:
    dt = prop["dataType"][0]
    if dt.endswith("[]"):
        if not isinstance(v, list):
            raise StoreError(f"invalid {dt} property {where}: not an array, but {_gotype(v)}")
        return [_coerce(x, {**prop, "dataType": [dt[:-2]]}, where, store) for x in v]
    if dt == "object":
        if not isinstance(v, dict):
            raise StoreError(f"invalid object property {where}: not an object, but {_gotype(v)}")
        out: dict[str, Any] = {}
        for k, x in v.items():
            if not PROP_RE.match(k):
                raise StoreError(f"'{k}' is not a valid nested property name of {where}")
            child = next((c for c in prop["nestedProperties"] if c["name"] == k), None)
            if child is None:
                if not store.autoschema:
                    raise StoreError(f"invalid object property {where}: no nested property '{k}'")
                child = normalize_property({"name": k, **auto_type(x, nested=True)}, nested=True)
                prop["nestedProperties"].append(child)  # auto-schema merges nested properties
            if x is not None:
                out[k] = _coerce(x, child, f"'{k}' of {where}", store)
        return out
    return _scalar(v, dt, where)


def _scalar(v: Any, dt: str, where: str) -> Any:
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if dt == "text" and isinstance(v, str):
        return v
    if dt == "int" and is_num and float(v).is_integer():
        return int(v)
    if dt == "int" and is_num:
        raise StoreError(f"invalid integer property {where}: requires an integer, the given value "
                         f"is '{v}'")
    if dt == "number" and is_num:
        return float(v)
    if dt == "boolean" and isinstance(v, bool):
        return v
    if dt == "date" and isinstance(v, str):
        try:
            return parse_date(v)
        except ValueError:
            raise StoreError(f"invalid date property {where}: requires a string with a RFC3339 "
                             f"formatted date, but the given value is '{v}'") from None
    if dt == "uuid" and isinstance(v, str):
        try:
            return canonical_uuid(v)
        except ValueError:
            raise StoreError(f"invalid uuid property {where}: '{v}' is not a valid uuid") from None
    if dt == "blob" and isinstance(v, str):
        return v
    if dt == "geoCoordinates" and isinstance(v, dict) and {"latitude", "longitude"} <= set(v):
        return {"latitude": float(v["latitude"]), "longitude": float(v["longitude"])}
    if dt == "phoneNumber" and isinstance(v, dict) and "input" in v:
        return {"input": str(v["input"]), "defaultCountry": str(v.get("defaultCountry", ""))}
    raise StoreError(f"invalid {dt} property {where}: not a {dt}, but {_gotype(v)}")


def _string_type(v: str) -> str:
    try:
        parse_date(v)
        return "date"
    except ValueError:
        pass
    try:
        uuid_lib.UUID(v)
        return "uuid"
    except ValueError:
        return "text"


def auto_type(v: Any, nested: bool) -> dict[str, Any]:
    """dataType (and nestedProperties) the server's auto-schema infers for a value."""
    if isinstance(v, str):
        return {"dataType": [_string_type(v)]}
    if isinstance(v, bool):
        return {"dataType": ["boolean"]}
    if isinstance(v, int):  # only typed int arrays carry ints over gRPC
        return {"dataType": ["int"]}
    if isinstance(v, float):
        return {"dataType": ["number"]}
    if v is None:
        return {"dataType": ["text"]}
    if isinstance(v, dict):
        if not nested and len(v) == 2 and v.get("latitude") is not None and v.get("longitude") is not None:
            return {"dataType": ["geoCoordinates"]}
        return {"dataType": ["object"], "nestedProperties": _nested_of([v])}
    if isinstance(v, list):
        if not v:
            return {"dataType": ["text[]"]}
        types = [auto_type(x, nested)["dataType"][0] for x in v]
        for i, t in enumerate(types):
            if t != types[0]:
                raise StoreError(f"element [{i}]: mismatched data type - '{types[0]}' expected, "
                                 f"got '{t}'")
        if types[0] == "object":
            return {"dataType": ["object[]"], "nestedProperties": _nested_of(v)}
        return {"dataType": [types[0] + "[]"]}
    raise StoreError(f"unrecognized data type of value '{v}'")


def _nested_of(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    props: dict[str, dict[str, Any]] = {}
    for value in values:
        for k, x in value.items():
            props.setdefault(k, {"name": k, **auto_type(x, nested=True)})
    return list(props.values())
