"""Full verification, before a migration is called completed: every id on both sides and a
canonical content hash per record (vmkit.fingerprint), with an exact re-check of any hash
mismatch (cosine-normalizing targets are compared after normalizing, to 1e-6).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from vmkit import kernels
from vmkit.connectors.base import Connector
from vmkit.fingerprint import batch_digests, canonical_metadata
from vmkit.plan import Plan
from vmkit.records import RecordBatch, RecordId, SparseVector
from vmkit.retry import call_with_retry
from vmkit.transform import map_batch
from vmkit.validate import Retry, compare_opts, fetch_visible, same_vectors

log = logging.getLogger("vmkit.verification")

Key = tuple[str, RecordId]
# What a record should be, kept for the exact re-check: vector, metadata, sparse, named vectors.
Suspect = tuple[np.ndarray, dict[str, Any], SparseVector | None, dict[str, np.ndarray]]


@dataclass
class Verification:
    """Outcome of comparing every record of source and target."""

    source_records: int = 0
    target_records: int = 0
    matched: int = 0
    rejected: int = 0
    missing: list[Key] = field(default_factory=list)
    extra: list[Key] = field(default_factory=list)
    mismatched: list[tuple[Key, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.missing or self.extra or self.mismatched)

    def to_dict(self, limit: int = 1000) -> dict[str, Any]:
        return {
            "passed": self.passed, "source_records": self.source_records,
            "target_records": self.target_records, "matched": self.matched,
            "rejected": self.rejected, "missing_count": len(self.missing),
            "extra_count": len(self.extra), "mismatched_count": len(self.mismatched),
            "missing": [list(k) for k in self.missing[:limit]],
            "extra": [list(k) for k in self.extra[:limit]],
            "mismatched": [[list(k), why] for k, why in self.mismatched[:limit]],
            "seconds": round(self.seconds, 3),
        }

    def lines(self, limit: int | None = 20) -> Iterable[str]:
        """Summary, then ids by problem (``limit`` per kind; None for all)."""
        yield (f"verification {'PASSED' if self.passed else 'FAILED'}: {self.matched} matched, "
               f"{self.rejected} rejected by plan, {len(self.missing)} missing, {len(self.extra)} extra, "
               f"{len(self.mismatched)} mismatched (source {self.source_records}, target {self.target_records})")
        groups = (
            ("missing", [_fmt(*k) for k in self.missing]),
            ("extra", [_fmt(*k) for k in self.extra]),
            ("mismatched", [f"{_fmt(*k)}: {why}" for k, why in self.mismatched]),
        )
        for label, items in groups:
            for item in items[:limit]:
                yield f"  {label:<10} {item}"
            if limit is not None and len(items) > limit:
                yield f"  ... and {len(items) - limit} more {label}"

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(f"<li><code>{line.strip()}</code></li>" for line in list(self.lines())[1:51])
        head = next(iter(self.lines()))
        return f"<div><b style='color:{color}'>{head}</b><ul>{rows}</ul></div>"


def _fmt(ns: str, rid: RecordId) -> str:
    return f"{rid!r}" + (f" (namespace {ns!r})" if ns else "")


def verify(
    source: Connector, target: Connector, plan: Plan, *, scan_size: int = 1000,
    freshness_s: float = 0.0, dead_letter: set[Key] | None = None,
    retry: Retry = call_with_retry,
) -> Verification:
    """Every id and every content hash, both sides. Memory: one 16-byte digest per target id.

    ``dead_letter`` holds (source namespace, source id) of records the target refused during
    the run: they are expected to be absent and counted as rejected.
    """
    dead_letter = dead_letter or set()
    started = time.monotonic()
    opts = compare_opts(plan)
    result = Verification()
    # Under cosine on a normalizing target a target may hand back what it stored (unit rows)
    # or, like the embedded Qdrant engine after a reopen, the raw vectors it was given: the
    # raw ones are normalized as the source side is, so equal records hash alike.
    target_digests = _target_digests(target, {**opts, "keep_unit_rows": True}, scan_size, retry)
    result.target_records = len(target_digests)

    suspects: dict[Key, Suspect] = {}
    matched = 0
    for batch in _scan_all(source, scan_size, retry):
        mapped = map_batch(batch, plan)
        result.source_records += mapped.read
        result.rejected += len(mapped.rejected)
        out = mapped.batch
        for i, (key, digest) in enumerate(batch_digests(out, **opts)):
            if dead_letter and (mapped.source_namespace, mapped.source_ids[i]) in dead_letter:
                result.rejected += 1
                continue
            # Each target digest is taken once compared, so what is left at the end is extra.
            if target_digests.pop(key, None) == digest:
                matched += 1
            else:
                sparse = None if out.sparse is None else out.sparse[i]
                named = {n: v[i].copy() for n, v in out.dense_vectors().items()} if out.named else {}
                suspects[key] = (out.vectors[i].copy(), out.metadata[i], sparse, named)
    result.matched = matched
    result.extra = sorted(target_digests, key=_sort_key)
    del target_digests
    _recheck(suspects, target, opts, freshness_s, result, retry)
    result.seconds = time.monotonic() - started
    log.info("%s", next(iter(result.lines())))
    return result


def _target_digests(target: Connector, opts: dict[str, Any], size: int, retry: Retry) -> dict[Key, bytes]:
    """What the target holds, hashed as the source side is (see ``validate.compare_opts``)."""
    if type(target).digests is not Connector.digests:  # the target keeps digests itself
        return retry(lambda: dict(target.digests(**opts)))
    out: dict[Key, bytes] = {}
    for batch in _scan_all(target, size, retry):
        out.update(batch_digests(batch, **opts))
    return out


def _scan_all(conn: Connector, size: int, retry: Retry) -> Iterable[RecordBatch]:
    cursor: str | None = None
    while True:
        batch, cursor = retry(conn.scan, cursor, size)
        if len(batch):
            yield batch
        if cursor is None:
            return


def _recheck(
    suspects: dict[Key, Suspect], target: Connector, opts: dict[str, Any], freshness_s: float, result: Verification, retry: Retry,
) -> None:
    """Exact comparison of hash mismatches; an absent id waits out eventual consistency."""
    by_ns: dict[str, list[RecordId]] = {}
    for ns, rid in suspects:
        by_ns.setdefault(ns, []).append(rid)
    for ns, ids in by_ns.items():
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            got = fetch_visible(target, chunk, ns, freshness_s, retry)
            where = {rid: i for i, rid in enumerate(got.ids)}
            for rid in chunk:
                want_vec, want_meta, want_sparse, want_named = suspects[(ns, rid)]
                if rid not in where:
                    result.missing.append((ns, rid))
                    continue
                j = where[rid]
                got_sparse = None if got.sparse is None else got.sparse[j]
                if want_named:  # several vectors: compared by name
                    why = _named_difference(want_named, got, j, opts) or _difference(
                        None, want_meta, None, got.metadata[j], opts)
                else:
                    why = _difference(want_vec, want_meta, got.vectors[j], got.metadata[j], opts)
                if not why and want_sparse != got_sparse:
                    why = "sparse vector differs"
                if why:
                    result.mismatched.append(((ns, rid), why))
                else:
                    result.matched += 1
    result.missing.sort(key=_sort_key)
    result.mismatched.sort(key=lambda m: _sort_key(m[0]))


def _named_difference(want: dict[str, np.ndarray], got: RecordBatch, row: int, opts: dict[str, Any]) -> str:
    have = got.dense_vectors()
    for name, vec in sorted(want.items()):
        if name not in have:
            return f"named vector '{name}' missing"
        why = _vector_difference(vec, have[name][row], name in opts["normalize_named"])
        if why:
            return f"named vector '{name}': {why}"
    extra = sorted(set(have) - set(want))
    return f"unexpected named vectors {extra}" if extra else ""


def _vector_difference(want_vec: np.ndarray, got_vec: np.ndarray, normalize: bool) -> str:
    if want_vec.shape != got_vec.shape:
        return f"vector dimension {got_vec.shape[0]} != {want_vec.shape[0]}"
    a, b = want_vec[None, :], got_vec[None, :]
    if same_vectors(a, b, normalize)[0]:
        return ""
    if normalize:
        a, b = kernels.normalize_rows(a), kernels.normalize_rows(b)
    diff = float(kernels.max_abs_diff_rows(a, b)[0])
    return f"vector differs{' after normalizing' if normalize else ''} (max |diff| {diff:.3g})"


def _difference(
    want_vec: np.ndarray | None, want_meta: dict[str, Any], got_vec: np.ndarray | None,
    got_meta: dict[str, Any], opts: dict[str, Any],
) -> str:
    if want_vec is not None and got_vec is not None:
        why = _vector_difference(want_vec, got_vec, opts["normalize"])
        if why:
            return why
    as_float = opts["numbers_as_float"]
    for k, v in want_meta.items():
        if k not in got_meta:
            return f"metadata key {k!r} missing"
        if canonical_metadata({k: v}, as_float) != canonical_metadata({k: got_meta[k]}, as_float):
            return f"metadata {k!r} differs: expected {v!r} ({type(v).__name__}), found {got_meta[k]!r} ({type(got_meta[k]).__name__})"
    extra = sorted(set(got_meta) - set(want_meta))
    if extra:
        return f"metadata has unexpected keys {extra}"
    return ""


def _sort_key(key: Key) -> tuple[str, int, str]:
    ns, rid = key
    return (ns, 0 if isinstance(rid, int) else 1, str(rid).rjust(20) if isinstance(rid, int) else rid)
