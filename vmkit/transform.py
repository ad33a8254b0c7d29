"""map_batch(batch, plan): the pure transform from source records to target-ready records.

Every record comes out either mapped or rejected with its reason and field, so that
read = written + rejected holds for every batch. The input batch is never mutated.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson

from vmkit import kernels
from vmkit.batching import RECORD_OVERHEAD, record_sizes
from vmkit.connectors.base import Capabilities
from vmkit.ids import ID_KIND_KEY, ORIGINAL_ID_KEY, UINT_MAX, BadId, restore_source_id, to_target_id
from vmkit.plan import Plan
from vmkit.records import Metadata, RecordBatch, RecordId, Rejection

_FLOAT_EXACT = 2**53
_DATES = (datetime.date, datetime.time)  # datetime.datetime is a date
_F32_MAX = float(np.finfo(np.float32).max)
# A row whose norm reaches this squares past float32: a normalizing target divides by an
# infinite norm and stores zeros.
_NORM_LIMIT = float(np.sqrt(_F32_MAX))


@dataclass
class MappedBatch:
    batch: RecordBatch  # ids are target ids
    source_ids: list[RecordId]  # aligned with batch rows
    rejected: list[Rejection] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)  # policy -> records touched
    source_namespace: str = ""

    @property
    def read(self) -> int:
        return len(self.batch) + len(self.rejected)


class _Reject(Exception):
    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


def map_batch(batch: RecordBatch, plan: Plan) -> MappedBatch:
    caps = plan.capabilities
    rejected = list(batch.rejected)
    changes: dict[str, int] = {}
    ns = batch.namespace
    dim = plan.target.dimension
    bad_rows = _vector_problems(batch, plan, caps)
    for row, problem in _named_vector_problems(batch, plan, caps).items():
        bad_rows.setdefault(row, problem)
    if plan.namespace_policy == "collections" and ns not in plan.namespace_collections:
        bad_rows = {i: (f"namespace {ns!r} has no collection in the plan (it appeared after "
                        "planning: re-plan to include it)", "namespace") for i in range(len(batch))}
    passthrough = _metadata_passthrough(plan, caps)
    walk = _values_need_walk(batch.metadata, caps)

    keep_rows: list[int] = []
    target_ids: list[RecordId] = []
    metas: list[Metadata] = []
    position: dict[RecordId, int] = {}
    ids = batch.ids
    if passthrough and not walk and _ids_pass_through(batch, plan, caps):
        keep_rows = [i for i in range(len(ids)) if i not in bad_rows] if bad_rows else list(range(len(ids)))
        target_ids = [ids[i] for i in keep_rows]
        metas = [dict(batch.metadata[i]) for i in keep_rows]
        rejected += [Rejection(ids[i], *bad_rows[i], ns) for i in sorted(bad_rows)]
        ids = []  # every record handled: the per-record loop below has nothing to do
    for i, rid in enumerate(ids):
        try:
            if i in bad_rows:
                raise _Reject(*bad_rows[i])
            meta = batch.metadata[i]
            if walk:
                meta = _json_values(meta, "metadata", not caps.metadata_objects, changes)
            meta = dict(meta) if passthrough else _map_metadata(meta, plan, caps, changes)
            # A record that came back from an earlier vmkit migration gets its own id back.
            original, meta = restore_source_id(rid, meta, caps.id_kinds)
            scope = ns if plan.namespace_policy == "field" else ""
            tid, extra = to_target_id(original, caps.id_kinds, scope, plan.uint_ids)
            meta.update(extra)
            if ns and plan.namespace_policy == "field":
                if plan.namespace_field in meta:
                    raise _Reject(f"metadata field collides with the namespace field "
                                  f"({plan.namespace_field!r}; choose another namespace_field)",
                                  f"metadata.{plan.namespace_field}")
                meta[plan.namespace_field] = ns
            if caps.id_ascii_only and not str(tid).isascii():
                raise _Reject("id has non-ASCII characters; the target takes ASCII ids only "
                              f"({_first_non_ascii(str(tid))})", "id")
            if caps.max_id_length and len(str(tid)) > caps.max_id_length:
                raise _Reject(f"id over the target's {caps.max_id_length}-character limit ({len(str(tid))} characters)", "id")
            if caps.max_metadata_bytes is not None:
                size = len(orjson.dumps(meta))
                if size > caps.max_metadata_bytes:
                    raise _Reject(f"metadata over the target's {caps.max_metadata_bytes}-byte limit ({size} bytes)", "metadata")
        except BadId as exc:
            rejected.append(Rejection(rid, str(exc), "id", ns))
            continue
        except _Reject as exc:
            rejected.append(Rejection(rid, exc.reason, exc.field, ns))
            continue
        if tid in position:  # a later duplicate wins, as a re-upsert would
            j = position.pop(tid)
            rejected.append(Rejection(batch.ids[keep_rows[j]], "duplicate id in batch (last kept)", "id", ns))
            keep_rows[j] = -1
        position[tid] = len(keep_rows)
        keep_rows.append(i)
        target_ids.append(tid)
        metas.append(meta)

    live = [k for k, row in enumerate(keep_rows) if row >= 0]
    live = _within_request_limit(batch, keep_rows, live, target_ids, metas, caps, rejected)
    rows = [keep_rows[k] for k in live]
    sparse = None
    if batch.sparse is not None and plan.target.sparse:
        sparse = [batch.sparse[r] for r in rows]
    vectors = batch.vectors[rows] if rows else np.zeros((0, dim), np.float32)
    out = RecordBatch(
        ids=[target_ids[k] for k in live],
        vectors=vectors,
        metadata=[metas[k] for k in live],
        sparse=sparse,
        namespace=ns if plan.namespace_policy in ("keep", "collections") else "",
        named={n: batch.named[n][rows] if rows else np.zeros((0, int(v["dimension"])), np.float32)
               for n, v in plan.target.extra_vectors.items()},
        vector_name=plan.target.vector_name,
    )
    return MappedBatch(out, [batch.ids[r] for r in rows], rejected, changes, ns)


def _ids_pass_through(batch: RecordBatch, plan: Plan, caps: Capabilities) -> bool:
    """True when every id goes to the target unchanged and no record carries an id kept by an
    earlier migration: the per-record id mapping can be skipped (the hot path for large
    uniform copies, and for full verification, which maps every source record again)."""
    ids = batch.ids
    if not ids or (batch.namespace and plan.namespace_policy == "field"):
        return False
    if caps.max_id_length is not None or caps.max_metadata_bytes is not None or caps.id_ascii_only:
        return False
    kinds = caps.id_kinds
    if all(type(i) is int for i in ids):  # bool is not int here
        ints = cast(list[int], ids)
        ok = "uint" in kinds and 0 <= min(ints) and max(ints) <= UINT_MAX
    elif all(type(i) is str and i for i in ids):
        ok = "string" in kinds  # a string target takes UUID text too
    else:
        return False
    return (ok and len(set(ids)) == len(ids)
            and not any(ORIGINAL_ID_KEY in m or ID_KIND_KEY in m for m in batch.metadata))


def _within_request_limit(
    batch: RecordBatch, keep_rows: list[int], live: list[int], target_ids: list[RecordId],
    metas: list[Metadata], caps: Capabilities, rejected: list[Rejection],
) -> list[int]:
    """Drop (and reject) records whose metadata JSON cannot encode or that are too large for
    a single write request to the target."""
    if not live:
        return live
    dense = batch.floats_per_record * caps.wire_bytes_per_float + RECORD_OVERHEAD
    try:
        shared = len(orjson.dumps([metas[k] for k in live]))
    except orjson.JSONEncodeError:  # rare: find the culprits one by one
        live = [k for k in live if _encodable(metas[k], batch.ids[keep_rows[k]], batch.namespace, rejected)]
        shared = len(orjson.dumps([metas[k] for k in live]))
    shared += len(orjson.dumps([str(target_ids[k]) for k in live]))
    if batch.sparse is None and dense + shared <= caps.max_batch_bytes:
        return live  # even all of the batch's metadata on one record would fit: no per-record sizes
    probe = RecordBatch([target_ids[k] for k in live], batch.vectors[[keep_rows[k] for k in live]],
                        [metas[k] for k in live],
                        None if batch.sparse is None else [batch.sparse[keep_rows[k]] for k in live],
                        named={n: v[[keep_rows[k] for k in live]] for n, v in batch.named.items()})
    sizes = record_sizes(probe, caps)
    if int(sizes.max()) <= caps.max_batch_bytes:
        return live
    kept = []
    for k, size in zip(live, sizes):
        if size > caps.max_batch_bytes:
            rejected.append(Rejection(batch.ids[keep_rows[k]], f"record over the target's "
                                      f"{caps.max_batch_bytes}-byte request limit ({int(size)} bytes)",
                                      "record", batch.namespace))
        else:
            kept.append(k)
    return kept


def _first_non_ascii(rid: str) -> str:
    pos = next(i for i, c in enumerate(rid) if not c.isascii())
    return f"{rid[pos]!r} at position {pos}"


def _encodable(meta: Metadata, rid: RecordId, ns: str, rejected: list[Rejection]) -> bool:
    try:
        orjson.dumps(meta)
        return True
    except orjson.JSONEncodeError as exc:
        rejected.append(Rejection(rid, f"metadata cannot be encoded as JSON ({exc})", "metadata", ns))
        return False


def _vector_problems(batch: RecordBatch, plan: Plan, caps: Capabilities) -> dict[int, tuple[str, str]]:
    """Row -> (reason, field) for vectors that cannot be written faithfully."""
    problems: dict[int, tuple[str, str]] = {}
    n, dim = len(batch), plan.target.dimension
    if n == 0:
        return problems
    if batch.dimension != dim:
        if batch.dimension == 0 and batch.sparse is not None and not plan.target.sparse:
            reason = "sparse-only record; the target has no sparse vectors"
        else:
            reason = f"wrong vector dimension ({batch.dimension}, the target takes {dim})"
        return {i: (reason, "vector") for i in range(n)}
    if dim == 0:
        return problems
    for i in np.flatnonzero(kernels.nonfinite_rows(batch.vectors)):
        problems[int(i)] = ("vector has NaN or Inf components", "vector")
    normalizes = caps.normalizes_cosine and plan.target.metric == "cosine"
    if caps.rejects_zero_vectors or normalizes:
        for i in np.flatnonzero(kernels.zero_rows(batch.vectors)):
            problems.setdefault(int(i), ("all-zero vector (no direction under this target/metric)", "vector"))
    if normalizes:
        for row in _overflowing_norm_rows(batch.vectors):
            problems.setdefault(row, ("vector norm overflows float32 (the target would store zeros "
                                    "under cosine)", "vector"))
    return problems


def _named_vector_problems(batch: RecordBatch, plan: Plan, caps: Capabilities) -> dict[int, tuple[str, str]]:
    """Row -> (reason, field) for the extra named vectors the target is to get."""
    problems: dict[int, tuple[str, str]] = {}
    n = len(batch)
    for name, want in sorted(plan.target.extra_vectors.items()):
        where = f"vector.{name}"
        vectors = batch.named.get(name)
        if vectors is None or vectors.shape[1] != int(want["dimension"]):
            got = "missing" if vectors is None else f"dimension {vectors.shape[1]}"
            for row in range(n):
                problems.setdefault(row, (f"named vector '{name}' {got} (the target takes {want['dimension']})", where))
            continue
        for i in np.flatnonzero(kernels.nonfinite_rows(vectors)):
            problems.setdefault(int(i), (f"named vector '{name}' has NaN or Inf components", where))
        if caps.rejects_zero_vectors or (caps.normalizes_cosine and want["metric"] == "cosine"):
            for i in np.flatnonzero(kernels.zero_rows(vectors)):
                problems.setdefault(int(i), (f"named vector '{name}' is all zeros (no direction "
                                             "under this target/metric)", where))
        if caps.normalizes_cosine and want["metric"] == "cosine":
            for row in _overflowing_norm_rows(vectors):
                problems.setdefault(row, (f"named vector '{name}' norm overflows float32", where))
    return problems


def _overflowing_norm_rows(vectors: np.ndarray) -> list[int]:
    """Rows whose sum of squares is past float32's range. A cheap screen on the largest
    component first, so the exact float64 sum runs only for suspects."""
    peak = np.maximum(vectors.max(axis=1), -vectors.min(axis=1)).astype(np.float64)
    suspects = np.flatnonzero(peak * np.sqrt(vectors.shape[1]) >= _NORM_LIMIT)
    return [int(i) for i in suspects if not np.square(vectors[i], dtype=np.float64).sum() <= _F32_MAX]


def _values_need_walk(metadata: list[Metadata], caps: Capabilities) -> bool:
    """Whether any value may be NaN/Inf or (for a JSON target) a date or time. One orjson pass
    over the batch screens for both: NaN/Inf print as null, and dates raise with PASSTHROUGH."""
    option = 0 if caps.metadata_objects else orjson.OPT_PASSTHROUGH_DATETIME
    try:
        return b"null" in orjson.dumps(metadata, option=option)
    except TypeError:  # orjson.JSONEncodeError; unencodable values are rejected later
        return True


def _json_values(value: Any, path: str, dates: bool, changes: dict[str, int]) -> Any:
    """``value`` with dates and times as ISO-8601 text (when ``dates``), at any depth: what
    is written is then what verification hashes. NaN/Inf are rejected: JSON cannot carry
    them and canonical hashing would see them as null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject(f"non-finite metadata number ({value}; JSON has no NaN or Inf)", path)
        return value
    if dates and isinstance(value, _DATES):
        changes["date -> ISO-8601 text"] = changes.get("date -> ISO-8601 text", 0) + 1
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_values(v, f"{path}.{k}", dates, changes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_json_values(v, f"{path}[{j}]", dates, changes) for j, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _metadata_passthrough(plan: Plan, caps: Capabilities) -> bool:
    """True when no rule can change any metadata: copy dicts as they are (the hot path)."""
    return (caps.metadata_nested and caps.metadata_null and caps.metadata_mixed_lists
            and caps.metadata_big_ints and caps.field_name_pattern is None and not caps.reserved_fields
            and not plan.renames and not plan.drop_fields)


def _map_metadata(meta: Metadata, plan: Plan, caps: Capabilities, changes: dict[str, int]) -> Metadata:
    out: Metadata = {}
    for key, value in _flatten_if_needed(meta, plan, caps).items():
        if key in plan.drop_fields:
            continue
        key = plan.renames.get(key, key)
        if caps.field_name_pattern and not re.fullmatch(caps.field_name_pattern, key):
            raise _Reject(f"field name not allowed by the target ({key!r}, no rename planned)", f"metadata.{key}")
        if key in caps.reserved_fields:
            raise _Reject(f"field name reserved by the target ({key!r}, no rename planned)", f"metadata.{key}")
        if value is None and not caps.metadata_null:
            changes["null dropped"] = changes.get("null dropped", 0) + 1
            continue
        out[key] = _map_value(key, value, plan, caps, changes)
    return out


def _flatten_if_needed(meta: Metadata, plan: Plan, caps: Capabilities) -> Metadata:
    if plan.nested_policy != "flatten" or caps.metadata_nested:
        return meta
    flat: Metadata = {}

    def walk(prefix: str, obj: Any) -> None:
        for k, v in obj.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                walk(name, v)
            elif name in flat:
                raise _Reject(f"flattened key collides with an existing key ({name!r})", f"metadata.{name}")
            else:
                flat[name] = v

    walk("", meta)
    return flat


def _map_value(key: str, value: Any, plan: Plan, caps: Capabilities, changes: dict[str, int]) -> Any:
    if isinstance(value, dict) and not caps.metadata_nested:
        if plan.nested_policy == "drop":
            raise _Reject("nested object and nested_policy=drop would lose it", f"metadata.{key}")
        changes["nested -> json"] = changes.get("nested -> json", 0) + 1
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, list):
        only_strings = all(isinstance(v, str) for v in value)
        nested = any(isinstance(v, (dict, list)) for v in value)
        mixed = len({type(v) for v in value}) > 1 or any(v is None or isinstance(v, list) for v in value)
        if ((not only_strings and not caps.metadata_mixed_lists) or (nested and not caps.metadata_nested)
                or (mixed and caps.metadata_uniform_lists)):
            changes["list -> json"] = changes.get("list -> json", 0) + 1
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        value = list(value)
    if not caps.metadata_big_ints:
        return _big_ints_to_str(value, changes)
    return value


def _big_ints_to_str(value: Any, changes: dict[str, int]) -> Any:
    """Integers past 2**53 as decimal strings, at any depth (a float64 store would round them)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_EXACT:
        changes["big int -> string"] = changes.get("big int -> string", 0) + 1
        return str(value)
    if isinstance(value, list):
        return [_big_ints_to_str(v, changes) for v in value]
    if isinstance(value, dict):
        return {k: _big_ints_to_str(v, changes) for k, v in value.items()}
    return value
