"""map_batch(batch, plan): the pure transform from source records to target-ready records.

Every record comes out either mapped or rejected with its reason and field, so that
read = written + rejected holds for every batch. The input batch is never mutated. Here: ids,
vectors and request limits; what happens to metadata values is vmkit.planning.metadata_rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities
from vmkit.connectors.batching import RECORD_OVERHEAD, record_sizes
from vmkit.core import kernels
from vmkit.core.ids import (
    ID_KIND_KEY,
    ORIGINAL_ID_KEY,
    UINT_MAX,
    BadId,
    restore_source_id,
    to_target_id,
)
from vmkit.core.records import Metadata, RecordBatch, RecordId, Rejection
from vmkit.planning.metadata_rules import (
    Reject,
    json_values,
    map_metadata,
    metadata_passthrough,
    values_need_walk,
)
from vmkit.planning.plan import Plan

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


def map_batch(batch: RecordBatch, plan: Plan) -> MappedBatch:
    caps = plan.capabilities
    rejected = list(batch.rejected)
    changes: dict[str, int] = {}
    ns = batch.namespace
    dim = plan.target.dimension
    bad_rows = _vector_problems(batch, plan, caps)
    for row, problem in _named_vector_problems(batch, plan, caps).items():
        bad_rows.setdefault(row, problem)
    for row in _negative_sparse_rows(batch, plan, caps):
        bad_rows.setdefault(row, ("sparse vector has negative weights; the target takes weights >= 0", "sparse"))
    if plan.namespace_policy == "collections" and ns not in plan.namespace_collections:
        bad_rows = {i: (f"namespace {ns!r} has no collection in the plan (it appeared after "
                        "planning: re-plan to include it)", "namespace") for i in range(len(batch))}
    passthrough = metadata_passthrough(plan, caps)
    walk = values_need_walk(batch.metadata, caps)

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
                raise Reject(*bad_rows[i])
            meta = batch.metadata[i]
            if walk:
                meta = json_values(meta, "metadata", not caps.metadata_objects, changes)
            meta = dict(meta) if passthrough else map_metadata(meta, plan, caps, changes)
            # A record that came back from an earlier vmkit migration gets its own id back.
            original, meta = restore_source_id(rid, meta)
            scope = ns if plan.namespace_policy == "field" else ""
            tid, extra = to_target_id(original, caps.id_kinds, scope, plan.uint_ids)
            meta.update(extra)
            if ns and plan.namespace_policy == "field":
                if plan.namespace_field in meta:
                    raise Reject(f"metadata field collides with the namespace field "
                                  f"({plan.namespace_field!r}; choose another namespace_field)",
                                  f"metadata.{plan.namespace_field}")
                meta[plan.namespace_field] = ns
            if caps.id_ascii_only and not str(tid).isascii():
                raise Reject("id has non-ASCII characters; the target takes ASCII ids only "
                              f"({_first_non_ascii(str(tid))})", "id")
            if caps.max_id_length and len(str(tid)) > caps.max_id_length:
                raise Reject(f"id over the target's {caps.max_id_length}-character limit ({len(str(tid))} characters)", "id")
            if caps.max_metadata_bytes is not None:
                size = len(orjson.dumps(meta))
                if size > caps.max_metadata_bytes:
                    raise Reject(f"metadata over the target's {caps.max_metadata_bytes}-byte limit ({size} bytes)", "metadata")
        except BadId as exc:
            rejected.append(Rejection(rid, str(exc), "id", ns))
            continue
        except Reject as exc:
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


def _negative_sparse_rows(batch: RecordBatch, plan: Plan, caps: Capabilities) -> list[int]:
    if not (caps.sparse_nonnegative and plan.target.sparse and batch.sparse is not None):
        return []
    return [i for i, sp in enumerate(batch.sparse) if sp is not None and len(sp.values) and sp.values.min() < 0]


def _overflowing_norm_rows(vectors: np.ndarray) -> list[int]:
    """Rows whose sum of squares is past float32's range. A cheap screen on the largest
    component first, so the exact float64 sum runs only for suspects."""
    peak = np.maximum(vectors.max(axis=1), -vectors.min(axis=1)).astype(np.float64)
    suspects = np.flatnonzero(peak * np.sqrt(vectors.shape[1]) >= _NORM_LIMIT)
    return [int(i) for i in suspects if not np.square(vectors[i], dtype=np.float64).sum() <= _F32_MAX]
