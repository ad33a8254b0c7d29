"""Sampled validation beside the migration, and the comparison rules every check shares.

Sampled validation re-reads a written batch from the target and compares it with what was
meant to be written: cosine similarity per record (the numba kernel) and metadata
completeness. Cosine >= 0.98 admits ~11.5 degrees of drift and cannot see a vector scaled by a
constant, so "completed" rests on full verification instead (vmkit.migration.verification).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vmkit.connectors.base import Connector
from vmkit.core import kernels
from vmkit.core.fingerprint import canonical_metadata, stored_vectors
from vmkit.core.records import RecordBatch, RecordId
from vmkit.core.retry import call_with_retry
from vmkit.migration.compare import Retry, compare_opts, fetch_visible
from vmkit.planning.plan import Plan

log = logging.getLogger("vmkit.migration.validate")


def is_sampled(migration_id: str, seq: int, rate: float) -> bool:
    """Deterministic per (migration, batch): a resumed run samples the same batches."""
    return seq == 1 or random.Random(f"{migration_id}:{seq}").random() < rate


def sample_rows(batch: RecordBatch, migration_id: str, batch_key: int | str, k: int) -> RecordBatch:
    """At most ``k`` records of a sampled batch (``k`` 0: all), drawn at random but the same
    for a (migration, batch) (``batch_key``: its seq, or partition and cursor), so a resumed run
    checks the same records."""
    if k <= 0 or len(batch) <= k:
        return batch
    return batch.take(sorted(random.Random(f"{migration_id}:{batch_key}:rows").sample(range(len(batch)), k)))


@dataclass
class SampleStats:
    n: int
    missing: int
    mean_cos: float | None
    min_cos: float | None
    max_cos: float | None
    failures: int
    completeness: float | None
    # Records of the batch mapped back through the reverse plan and compared with the raw
    # source batch (when given), and how many of them differ (also counted in ``failures``).
    reverse_checked: int = 0
    reverse_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_sample(
    expected: RecordBatch, target: Connector, plan: Plan, *, min_similarity: float = 0.98,
    freshness_s: float = 0.0, retry: Retry = call_with_retry, source_batch: RecordBatch | None = None,
) -> SampleStats:
    """Compare what was written for one batch (target-ready records) with what the target
    now returns. With ``source_batch`` (the raw source batch ``expected`` was mapped from),
    the records fetched are also mapped back to source terms and compared with it
    (vmkit.migration.reverse), independently of the forward transform."""
    if not len(expected):
        return SampleStats(0, 0, None, None, None, 0, None)
    got = fetch_visible(target, expected.ids, expected.namespace, freshness_s, retry)
    where = {rid: i for i, rid in enumerate(got.ids)}
    rows = [i for i, rid in enumerate(expected.ids) if rid in where]
    missing = len(expected) - len(rows)
    reversed_bad: set[RecordId] = set()
    reverse_checked = 0
    if source_batch is not None and rows:
        from vmkit.migration.reverse import reverse_check

        check = reverse_check(got.take([where[expected.ids[i]] for i in rows]), source_batch, plan)
        reverse_checked, reversed_bad = check.checked, {tid for tid, _, _ in check.failures}
    if not rows:
        return SampleStats(len(expected), missing, None, None, None, missing, 0.0)
    opts = compare_opts(plan)
    got_rows = [where[expected.ids[i]] for i in rows]
    if expected.named:  # several vectors, matched by name: a record is as good as its worst
        have = got.dense_vectors()
        cos = np.full(len(rows), np.inf)
        for name, vectors in expected.dense_vectors().items():
            other = have.get(name)
            cos = np.minimum(cos, np.full(len(rows), np.nan)  # NaN: missing or wrong shape
                             if other is None or other.shape[1] != vectors.shape[1]
                             else kernels.cosine_rows(vectors[rows], other[got_rows]))
    else:
        exp_vec = stored_vectors(expected.vectors[rows], opts["normalize"])
        cos = kernels.cosine_rows(exp_vec, got.vectors[got_rows])
    complete = np.array([
        _completeness(expected.metadata[i], got.metadata[where[expected.ids[i]]], opts["numbers_as_float"])
        for i in rows
    ])
    bad = ~(cos >= min_similarity) | (complete < 1.0)  # NaN cosine counts as a failure
    if reversed_bad:
        bad |= np.array([expected.ids[i] in reversed_bad for i in rows])
    return SampleStats(
        n=len(expected), missing=missing,
        mean_cos=float(np.nanmean(cos)) if np.isfinite(cos).any() else None,
        min_cos=float(np.nanmin(cos)) if np.isfinite(cos).any() else None,
        max_cos=float(np.nanmax(cos)) if np.isfinite(cos).any() else None,
        failures=missing + int(bad.sum()), completeness=float(complete.mean()),
        reverse_checked=reverse_checked, reverse_failures=len(reversed_bad),
    )


def _completeness(want: dict[str, Any], got: dict[str, Any], as_float: bool) -> float:
    """Share of expected metadata keys present in the target with an equal value."""
    if not want:
        return 1.0
    same = sum(
        1 for k, v in want.items()
        if k in got and canonical_metadata({k: v}, as_float) == canonical_metadata({k: got[k]}, as_float)
    )
    return same / len(want)
