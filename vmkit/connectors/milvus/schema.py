"""A Milvus collection's schema as vmkit sees it: which field is the key, which are vectors
(readable or not, and why), which are metadata; and the plan findings and Capabilities that
follow from it. Pure functions of ``describe_collection`` output (pymilvus
``MilvusClient.describe_collection``: fields with ``type``, ``params``, ``is_primary``,
``auto_id``, ``is_partition_key``), so they are tested without an engine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vmkit.connectors.base import Capabilities, first_vector
from vmkit.core.errors import PlanError

# Milvus metric names (pymilvus MetricType; milvus.io/docs/metric.md) <-> vmkit's.
TO_MILVUS = {"cosine": "COSINE", "euclidean": "L2", "dot": "IP"}
FROM_MILVUS = {v: k for k, v in TO_MILVUS.items()}

# Field types by their pymilvus DataType name (pymilvus/client/types.py DataType).
DENSE = ("FLOAT_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR")
SPARSE = "SPARSE_FLOAT_VECTOR"
UNREADABLE_VECTORS = {
    "BINARY_VECTOR": "binary vectors have no float form vmkit can carry",
    "INT8_VECTOR": "int8 vectors are quantized; vmkit carries float32 vectors only",
}
SCALARS = ("BOOL", "INT8", "INT16", "INT32", "INT64", "FLOAT", "DOUBLE", "VARCHAR", "STRING", "ARRAY", "JSON",
           "TIMESTAMPTZ")

INT64_MAX = 2**63 - 1
# VARCHAR max_length may be at most 65,535 bytes (milvus.io/docs/limitations.md); the key of a
# collection vmkit creates takes any string id up to that.
VARCHAR_MAX = 65_535
JSON_MAX_BYTES = 65_536  # a JSON field, the dynamic "$meta" one included (docs: use-json-fields.md)
PK_FIELD, VECTOR_FIELD, SPARSE_FIELD = "id", "vector", "sparse"
DYNAMIC = "$meta"
# A SPARSE_FLOAT_VECTOR value must hold a nonzero weight (Milvus Lite: "sparse vector must
# contain at least one nonzero float32 weight"; nullable sparse fields fail there too), so a
# record without a sparse vector is written as this one entry at the last index Milvus
# allows (indices are below 2**32 - 1), read back as "no sparse vector".
ABSENT_SPARSE_INDEX = 2**32 - 2
ABSENT_SPARSE = {ABSENT_SPARSE_INDEX: 1e-30}
# Partition names on a server: letters, digits and underscores, not starting with a digit,
# at most 255 characters (milvus.io/docs/limitations.md, "partition name").
_PARTITION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
DEFAULT_PARTITION = "_default"


@dataclass
class Layout:
    """The parts of one collection."""

    pk: str
    pk_is_int: bool
    pk_max_length: int | None
    auto_id: bool
    dense: dict[str, tuple[str, int]]  # name -> (type name, dimension)
    sparse: str | None
    scalars: dict[str, str]  # metadata field name -> type name
    partition_key: str | None
    dynamic: bool
    skipped: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # vector field -> vmkit metric

    @property
    def first(self) -> str:
        return first_vector(list(self.dense)) if self.dense else ""

    @property
    def others(self) -> list[str]:
        return sorted(n for n in self.dense if n != self.first)

    @property
    def vector_fields(self) -> list[str]:
        return [*self.dense, *([self.sparse] if self.sparse else [])]


def type_name(t: Any) -> str:
    return str(getattr(t, "name", t))


def parse(desc: dict[str, Any], collection: str) -> Layout:
    """The Layout of ``describe_collection`` output; PlanError naming what is missing."""
    pk, pk_type, max_len, auto_id = "", "", None, bool(desc.get("auto_id"))
    dense: dict[str, tuple[str, int]] = {}
    sparse: str | None = None
    scalars: dict[str, str] = {}
    skipped: dict[str, str] = {}
    pkey: str | None = None
    for f in desc.get("fields", []):
        name, kind, params = f["name"], type_name(f["type"]), f.get("params") or {}
        if f.get("is_primary"):
            pk, pk_type, auto_id = name, kind, auto_id or bool(f.get("auto_id"))
            max_len = int(params["max_length"]) if "max_length" in params else None
        elif kind in DENSE:
            dense[name] = (kind, int(params["dim"]))
        elif kind == SPARSE and sparse is None:
            sparse = name
        elif kind == SPARSE:
            skipped[name] = f"a second sparse vector field (vmkit carries one per record; '{sparse}' is read)"
        elif kind in UNREADABLE_VECTORS:
            skipped[name] = UNREADABLE_VECTORS[kind]
        elif kind in SCALARS:
            scalars[name] = kind
            if f.get("is_partition_key"):
                pkey = name
        else:
            skipped[name] = f"field type {kind} is not carried"
    if not pk:
        raise PlanError(f"milvus collection {collection} has no primary key field")
    if pk_type not in ("INT64", "VARCHAR"):
        raise PlanError(f"milvus collection {collection}: primary key '{pk}' is {pk_type} (INT64 or VARCHAR expected)")
    if not dense and sparse is None:
        why = "; ".join(f"{n}: {r}" for n, r in sorted(skipped.items())) or "none at all"
        raise PlanError(f"milvus collection {collection} has no vector field vmkit can read ({why})")
    return Layout(pk, pk_type == "INT64", max_len, auto_id, dense, sparse, scalars, pkey,
                  bool(desc.get("enable_dynamic_field")), skipped)


def capabilities(base: Capabilities, layout: Layout | None, pk_option: str) -> Capabilities:
    """What this collection takes: its key's kind and length (or, for one vmkit will create,
    the ``pk=`` URI option's), and the names records may not use as metadata keys."""
    max_len: int | None
    if layout is None:
        is_int, max_len, reserved = pk_option == "int64", VARCHAR_MAX, {PK_FIELD, VECTOR_FIELD, SPARSE_FIELD}
    else:
        is_int, max_len = layout.pk_is_int, layout.pk_max_length
        reserved = {layout.pk, *layout.vector_fields, *layout.skipped}
    return replace(
        base,
        id_kinds=frozenset({"uint"}) if is_int else frozenset({"string", "uuid"}),
        max_id_length=None if is_int else max_len,
        reserved_fields=frozenset({*reserved, DYNAMIC}),
        vector_names_reserved=True,  # one field per named vector, beside the dynamic keys
        # "sparse weight ... must be finite, non-negative float32" (Milvus Lite 3.2 and the
        # server's SPARSE_FLOAT_VECTOR rules): the plan rejects such records by name
        sparse_nonnegative=True,
    )


def findings(layout: Layout) -> list[dict[str, Any]]:
    """What the plan must say about this collection as a source (PlanWarning fields)."""
    out: list[dict[str, Any]] = []
    if layout.auto_id:
        out.append({"field": "id", "message": f"ids were generated by Milvus (auto_id on '{layout.pk}') and are "
                    "kept as record ids", "policy": "kept"})
    if layout.partition_key:
        out.append({"field": "namespace", "message": f"partition key '{layout.partition_key}': its values are "
                    "read as namespaces (and kept as a metadata field)", "policy": "one namespace per value"})
    for name in layout.dense:
        if name not in layout.metrics:
            out.append({"field": f"vector.{name}", "message": "no index: the metric is unknown", "policy": "cosine"})
    return out


def target_findings(layout: Layout) -> list[dict[str, Any]]:
    """What the plan must say about this collection as a target: auto_id assigns new keys,
    so a re-run would duplicate every record and verification could match none."""
    if not layout.auto_id:
        return []
    return [{"field": "id", "message": f"the target's primary key '{layout.pk}' is auto_id: Milvus would "
             "assign new ids, so a re-run duplicates records and verification cannot match them",
             "policy": "create the collection without auto_id (or let vmkit create it)", "severity": "error"}]


def partition_problem(name: str) -> str | None:
    """Why Milvus would refuse ``name`` as a partition, or None."""
    if name == DEFAULT_PARTITION:
        return "'_default' is the partition of records without a namespace"
    if not _PARTITION_NAME.fullmatch(name):
        return ("Milvus partition names are letters, digits and underscores, not starting with a digit, "
                "at most 255 characters")
    return None


def widen(kind: str, value: Any, dim: int) -> np.ndarray:
    """A vector as read, widened exactly to float32: FLOAT16 through numpy's float16, BFLOAT16
    by putting its 16 bits on top of a float32's (bfloat16 is float32's upper half). pymilvus
    hands these types out as raw little-endian bytes (client/field_data_extractors.py), a
    one-element list of them, or a numpy array."""
    if kind == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (bytes, bytearray)):
        value = value[0]
    if isinstance(value, (bytes, bytearray)):
        raw = np.frombuffer(value, dtype="<u2")
    else:
        arr = np.asarray(value)
        raw = arr.view("<u2") if arr.dtype.itemsize == 2 and arr.dtype.kind != "u" else arr.astype("<u2")
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 2:  # already widened by the SDK
            return arr.astype(np.float32)
    if raw.size != dim:
        raise ValueError(f"{kind} of {raw.size} components, field has {dim}")
    if kind == "FLOAT16_VECTOR":
        return raw.view(np.float16).astype(np.float32)
    return (raw.astype(np.uint32) << 16).view(np.float32)
