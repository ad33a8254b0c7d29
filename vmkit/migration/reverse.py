"""Target records mapped back to source terms, and compared with the raw source records.

Full verification proves "target == map(source)"; a bug in ``map`` itself (ids, renames,
namespace folding) would be written and verified alike. This check does not call the forward
transform: it takes target records as fetched, undoes the plan's documented changes and
compares the result with the raw source records:

- namespace: the target's namespace (``keep``, ``collections``) or the plan's namespace field
  (``field``, which it removes); under ``drop`` the namespace is gone and not compared;
- id: ``_vmkit_source_id`` / ``_vmkit_id_kind`` restore the original id and its kind (an int
  that travelled as decimal text is an int again), and the target id must be the one the
  documented id scheme derives from (namespace, original id) (vmkit.core.ids);
- field names: the plan's renames inverted; fields the plan drops are not compared;
- values: JSON-encoded objects and lists decoded, ISO-8601 text read back as the source's
  date or time, integers past 2**53 kept as text read back as ints, nulls a target cannot hold
  not compared; flattened objects are compared flattened (``a.b`` keys on both sides);
- vectors: dense (after normalizing on a cosine-normalizing target), named and sparse.

What the plan changes but cannot be undone exactly is compared as far as it can be and said in
``ReverseCheck.notes``.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from vmkit.core.fingerprint import canonical_metadata
from vmkit.core.ids import ID_KIND_KEY, ORIGINAL_ID_KEY, VMKIT_NAMESPACE
from vmkit.core.records import Metadata, RecordBatch, RecordId
from vmkit.migration.compare import compare_opts, same_vectors
from vmkit.planning.plan import Plan

log = logging.getLogger("vmkit.migration.reverse")

Key = tuple[str, RecordId]
_FLOAT_EXACT = 2**53
_UINT_MAX = 2**64 - 1


@dataclass
class SourceRecord:
    """One target record in source terms. ``namespace`` is None when the plan dropped it."""

    target_id: RecordId
    namespace: str | None
    id: RecordId
    metadata: Metadata
    row: int  # its row in the fetched target batch
    problem: str = ""  # the target id disagrees with the id scheme, or the kept id is unusable


@dataclass
class ReverseCheck:
    """Outcome of comparing target records, mapped back, with the raw source records."""

    checked: int = 0
    # (target id, source key the record maps back to, what differs)
    failures: list[tuple[RecordId, Key, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def merge(self, other: "ReverseCheck") -> None:
        self.checked += other.checked
        self.failures += other.failures
        for n in other.notes:
            self.note(n)


def to_source_terms(got: RecordBatch, plan: Plan) -> list[SourceRecord]:
    """Every record of a fetched target batch as the source held it (see the module doc)."""
    inverse = {new: old for old, new in plan.renames.items()}
    kinds = plan.capabilities.id_kinds  # built from the plan's dict: once, not per record
    out = []
    for row, tid in enumerate(got.ids):
        meta = dict(got.metadata[row])
        ns: str | None
        if plan.namespace_policy == "field":
            value = meta.pop(plan.namespace_field, "")
            ns = value if isinstance(value, str) else str(value)
        elif plan.namespace_policy == "drop":
            ns = None
        else:
            ns = got.namespace
        original, problem = _original_id(tid, meta)
        if not problem:
            want = expected_target_id(ns or "", original, plan, kinds)
            if want != tid:
                problem = (f"target id {tid!r} is not the one the id scheme gives "
                           f"{_where(ns, original)} ({want!r})")
        out.append(SourceRecord(tid, ns, original, {inverse.get(k, k): v for k, v in meta.items()}, row, problem))
    return out


def _original_id(tid: RecordId, meta: Metadata) -> tuple[RecordId, str]:
    """The source id a target record keeps (and removes what kept it from ``meta``)."""
    kind = meta.pop(ID_KIND_KEY, None)
    if ORIGINAL_ID_KEY in meta:
        original = meta.pop(ORIGINAL_ID_KEY)
        if kind == "uint":
            if not (isinstance(original, str) and original.isdigit()):
                return original, f"kept source id {original!r} is marked uint but is not decimal digits"
            return int(original), ""
        return original, ""
    if kind == "uint":
        if not (isinstance(tid, str) and tid.isdigit()):
            return tid, f"target id {tid!r} is marked uint but is not decimal digits"
        return int(tid), ""
    return tid, ""


def expected_target_id(ns: str, rid: RecordId, plan: Plan, kinds: frozenset[str] | None = None) -> RecordId:
    """The target id the documented id scheme (vmkit.core.ids) gives source record (ns, rid), written
    here again from the documentation so that a bug in the forward mapping shows. ``kinds``: the
    target's id kinds, when the caller has them (``plan.capabilities`` builds them anew)."""
    kinds = plan.capabilities.id_kinds if kinds is None else kinds
    name = f"i:{rid}" if isinstance(rid, int) else f"s:{rid}"
    if ns and plan.namespace_policy == "field":
        key = f"{ns}\x1f{name}"
        return str(uuid.uuid5(VMKIT_NAMESPACE, key)) if "uuid" in kinds else key
    kind = _kind(rid)
    if kind in kinds or (kind == "uuid" and "string" in kinds):
        return rid
    if kind == "uint" and "string" in kinds and plan.uint_ids == "decimal":
        return str(rid)
    return str(uuid.uuid5(VMKIT_NAMESPACE, name))


def _kind(rid: RecordId) -> str:
    if isinstance(rid, int):
        return "uint"
    try:
        return "uuid" if len(rid) == 36 and str(uuid.UUID(rid)) == rid else "string"
    except ValueError:
        return "string"


def reverse_check(got: RecordBatch, raw: RecordBatch, plan: Plan) -> ReverseCheck:
    """Map the fetched target records ``got`` back to source terms and compare each with the
    raw source record of ``raw`` (one source batch, one namespace) it maps back to. Source
    records no target record maps back to are not judged here (the plan or the target may
    have rejected them; full verification and the counts account for them)."""
    out = ReverseCheck()
    caps = plan.capabilities
    opts = compare_opts(plan)
    if plan.namespace_policy == "drop":
        out.note("namespaces dropped by the plan: not compared")
    if plan.drop_fields:
        out.note(f"fields dropped by the plan not compared: {sorted(plan.drop_fields)}")
    if not plan.target.sparse and raw.sparse is not None:
        out.note("sparse vectors not copied by the plan: not compared")
    if set(raw.named) - set(plan.target.extra_vectors):
        out.note(f"named vectors not copied by the plan not compared: {sorted(set(raw.named) - set(plan.target.extra_vectors))}")
    if plan.nested_policy == "flatten" and not caps.metadata_nested:
        out.note("flattened objects compared flattened ('a.b' keys on both sides)")
    by_id = {(type(rid), rid): i for i, rid in enumerate(raw.ids)}
    for i, meta in enumerate(raw.metadata):
        if ORIGINAL_ID_KEY in meta or ID_KIND_KEY in meta:  # back from an earlier vmkit migration
            earlier, _ = _original_id(raw.ids[i], dict(meta))
            by_id.setdefault((type(earlier), earlier), i)
            out.note("records carrying an id kept by an earlier migration are matched by that id")
    have = _by_plan_names(got, plan)
    for rec in to_source_terms(got, plan):
        key: Key = (raw.namespace if rec.namespace is None else rec.namespace, rec.id)
        out.checked += 1
        why = rec.problem
        row = by_id.get((type(rec.id), rec.id))
        if not why and rec.namespace is not None and rec.namespace != raw.namespace:
            why = f"maps back to namespace {rec.namespace!r}, not the source's {raw.namespace!r}"
        if not why and row is None:
            why = f"maps back to {_where(rec.namespace, rec.id)}, which the source batch does not hold"
        if not why and row is not None:
            why = (_vectors_differ(raw, row, have, rec.row, plan, opts)
                   or _sparse_differs(raw, row, got, rec.row, plan)
                   or _metadata_differs(_source_side(raw.metadata[row], plan, caps, out),
                                        _text_fields_decoded(rec.metadata, plan.text_fields),
                                        not caps.metadata_big_ints, caps.metadata_big_ints))
        if why:
            out.failures.append((rec.target_id, key, why))
    if out.failures:
        log.warning("reverse check: %d of %d target records do not map back to their source record; "
                    "first: %r %s", len(out.failures), out.checked, out.failures[0][1], out.failures[0][2])
    return out


def _where(ns: str | None, rid: RecordId) -> str:
    return f"{rid!r}" + ("" if not ns else f" in namespace {ns!r}")


def _vectors_differ(raw: RecordBatch, i: int, have: dict[str, np.ndarray], j: int, plan: Plan,
                    opts: dict[str, Any]) -> str:
    want = _by_plan_names(raw, plan)
    for name in plan.target.vector_spaces():
        if name not in have or name not in want:
            return f"vector {name or 'default'!r} missing"
        a, b = want[name][i : i + 1], have[name][j : j + 1]
        if a.shape != b.shape:
            return f"vector {name or 'default'!r} has dimension {b.shape[1]}, the source {a.shape[1]}"
        normalize = name in opts["normalize_named"] if plan.target.extra_vectors else opts["normalize"]
        if not same_vectors(a, b, normalize)[0]:
            return f"vector {name or 'default'!r} differs from the source's"
    return ""


def _by_plan_names(batch: RecordBatch, plan: Plan) -> dict[str, np.ndarray]:
    """A batch's dense vectors by name; where one side has no vector of the plan's first name
    (a target with one unnamed vector, a source whose first the plan copies alone), its first
    vector stands for it."""
    vectors = batch.dense_vectors()
    if plan.target.vector_name not in vectors:
        vectors[plan.target.vector_name] = batch.vectors
    return vectors


def _sparse_differs(raw: RecordBatch, i: int, got: RecordBatch, j: int, plan: Plan) -> str:
    if not plan.target.sparse:
        return ""
    want = None if raw.sparse is None else raw.sparse[i]
    have = None if got.sparse is None else got.sparse[j]
    return "" if want == have else "sparse vector differs from the source's"


def _source_side(meta: Metadata, plan: Plan, caps: Any, out: ReverseCheck) -> Metadata:
    """The raw source metadata as far as the plan keeps it: flattened when the plan flattens,
    dropped fields and (where the target holds none) top-level nulls left out."""
    meta = {k: v for k, v in meta.items() if k not in (ORIGINAL_ID_KEY, ID_KIND_KEY)}
    if plan.nested_policy == "flatten" and not caps.metadata_nested:
        meta = _flatten(meta)
    kept = {}
    for k, v in meta.items():
        if k in plan.drop_fields:
            continue
        if v is None and not caps.metadata_null:
            out.note("null values the target cannot hold were dropped by the plan: not compared")
            continue
        kept[k] = v
    return kept


def _flatten(meta: Metadata, prefix: str = "") -> Metadata:
    flat: Metadata = {}
    for k, v in meta.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, name))
        else:
            flat[name] = v
    return flat


def _text_fields_decoded(meta: Metadata, text_fields: list[str]) -> Metadata:
    """Values the plan stored as JSON text (keys whose values mix types on a typed target)
    decoded back; one that does not decode stays as it is and then differs."""
    if not text_fields:
        return meta
    out = dict(meta)
    for key in text_fields:
        if isinstance(out.get(key), str):
            try:
                out[key] = orjson.loads(out[key])
            except orjson.JSONDecodeError:
                pass
    return out


def _metadata_differs(want: Metadata, have: Metadata, as_float: bool, big_ints: bool) -> str:
    for k in want:
        if k not in have:
            return f"metadata field {k!r} missing"
    extra = sorted(set(have) - set(want))
    if extra:
        return f"metadata has fields the source record has not: {extra}"
    for k, v in want.items():
        if not _same(v, _decoded(have[k], v, big_ints), as_float):
            return f"metadata {k!r} differs: source {v!r}, target maps back to {have[k]!r}"
    return ""


def _same(a: Any, b: Any, as_float: bool) -> bool:
    """Equal in canonical form; on a float64 store numbers compare as floats, except the ints
    past 2**53 the plan kept exact as text (read back as ints above)."""
    if as_float:
        a, b = _small_floats(a), _small_floats(b)
    try:
        return canonical_metadata({"v": a}) == canonical_metadata({"v": b})
    except TypeError:  # a value orjson cannot encode (an int past 64 bits): compare as Python
        return bool(a == b and type(a) is type(b))


def _small_floats(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) <= _FLOAT_EXACT else value
    if isinstance(value, dict):
        return {k: _small_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_small_floats(v) for v in value]
    return value


def _decoded(value: Any, like: Any, big_ints: bool) -> Any:
    """``value`` read back from the target with the plan's documented changes undone, guided by
    the source value ``like`` (what the target holds as text may have been an object, a date or
    a big int)."""
    if isinstance(value, str) and not isinstance(like, str):
        if isinstance(like, (dict, list, tuple)):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        elif isinstance(like, (datetime.date, datetime.time)):
            return _parse_date(value, like)
        elif isinstance(like, int) and not isinstance(like, bool) and abs(like) > _FLOAT_EXACT and not big_ints:
            digits = value[1:] if value.startswith("-") else value
            return int(value) if digits.isdigit() else value
    if isinstance(like, (list, tuple)) and isinstance(value, list) and len(like) == len(value):
        return [_decoded(v, w, big_ints) for v, w in zip(value, like)]
    if isinstance(like, dict) and isinstance(value, dict):
        return {k: _decoded(v, like[k], big_ints) if k in like else v for k, v in value.items()}
    return value


def _parse_date(text: str, like: datetime.date | datetime.time) -> Any:
    kind = type(like)
    try:
        parsed = kind.fromisoformat(text)  # type: ignore[attr-defined]
    except ValueError:
        return text
    # The same instant written with another offset notation still compares equal.
    return like if parsed == like else parsed
