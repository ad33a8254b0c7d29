"""The exact re-check behind full verification: records whose content digests differ (or are
absent) are fetched from the target and compared value by value (vectors to 1e-6, after
normalizing where the target normalizes; metadata canonically), and each difference is said in
words; keys that cannot be re-checked are reported with their digest status."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from vmkit.connectors.base import Connector
from vmkit.core import kernels
from vmkit.core.errors import TerminalError
from vmkit.core.fingerprint import canonical_metadata
from vmkit.core.records import RecordBatch, RecordId
from vmkit.migration.compare import Retry, fetch_visible, same_vectors
from vmkit.migration.digest_table import ABSENT, DIFFERS

if TYPE_CHECKING:
    from vmkit.migration.verification import Key, Suspect, Verification

log = logging.getLogger("vmkit.migration.verification")


def recheck(
    suspects: dict[Key, Suspect], target: Connector, opts: dict[str, Any], freshness_s: float, result: Verification, retry: Retry,
    statuses: dict[Key, int] | None = None,
) -> None:
    """Exact comparison of hash mismatches; an absent id waits out eventual consistency. A
    target that cannot hand records back (a fingerprint sink) has its suspects named by their
    digest ``statuses`` instead."""
    by_ns: dict[str, list[RecordId]] = {}
    for ns, rid in suspects:
        by_ns.setdefault(ns, []).append(rid)
    fetched = False
    for ns, ids in by_ns.items():
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            try:
                got = fetch_visible(target, chunk, ns, freshness_s, retry)
            except TerminalError as exc:
                if fetched or statuses is None:
                    raise
                log.warning("verification: %s cannot return records for the exact re-check (%s)", target.uri, exc)
                unchecked([(k, statuses[k]) for k in suspects], "the target cannot return records", result)
                return
            fetched = True
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
    result.missing.sort(key=sort_key)
    result.mismatched.sort(key=lambda m: sort_key(m[0]))


def unchecked(keys: list[tuple[Key, int]], why: str, result: Verification) -> None:
    """Suspects named by their digest status alone, without the exact re-check."""
    result.missing += [k for k, st in keys if st == ABSENT]
    result.mismatched += [(k, f"content digest differs (not re-checked: {why})") for k, st in keys if st == DIFFERS]
    result.missing.sort(key=sort_key)
    result.mismatched.sort(key=lambda m: sort_key(m[0]))


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


def sort_key(key: Key) -> tuple[str, int, str]:
    ns, rid = key
    return (ns, 0 if isinstance(rid, int) else 1, str(rid).rjust(20) if isinstance(rid, int) else rid)
