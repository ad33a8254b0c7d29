"""The comparison rules every check shares (sampled validation, full verification, the reverse
check, sync): how records are compared under a plan, which vectors are equal, and a fetch that
waits out a target's eventual consistency."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from vmkit.connectors.base import Connector
from vmkit.core import kernels
from vmkit.core.records import RecordBatch, RecordId
from vmkit.core.retry import call_with_retry
from vmkit.planning.plan import Plan

NORMALIZED_TOLERANCE = 1e-6  # max |a-b| per component between unit vectors
Retry = Callable[..., Any]


def compare_opts(plan: Plan) -> dict[str, Any]:
    """How records are compared under this plan, by sampling, verification and sync alike."""
    caps = plan.capabilities
    return {
        "normalize": caps.normalizes_cosine and plan.target.metric == "cosine",
        "numbers_as_float": not caps.metadata_big_ints,
        # by name, the first vector too: with several vectors each is compared under its name
        "normalize_named": frozenset(n for n, (_, metric) in plan.target.vector_spaces().items()
                                     if caps.normalizes_cosine and metric == "cosine"),
    }


def fetch_visible(
    target: Connector, ids: Sequence[RecordId], namespace: str, freshness_s: float,
    retry: Retry = call_with_retry,
) -> RecordBatch:
    """Fetch ids, re-fetching the missing ones until ``freshness_s`` passes (eventual consistency)."""
    found = retry(target.fetch, ids, namespace)
    deadline = time.monotonic() + freshness_s
    delay = 0.05
    while len(found) < len(ids) and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)
        have = set(found.ids)
        more = retry(target.fetch, [i for i in ids if i not in have], namespace)
        found = RecordBatch.concat([found, more])
        found.namespace = namespace
    return found


def same_vectors(a: np.ndarray, b: np.ndarray, normalize: bool) -> np.ndarray:
    """Per row: equal to 1e-6 after normalizing (cosine-normalizing targets), else bit-exact."""
    if a.shape != b.shape:
        return np.zeros(len(a), bool)
    if normalize:
        return kernels.max_abs_diff_rows(kernels.normalize_rows(a), kernels.normalize_rows(b)) <= NORMALIZED_TOLERANCE
    return (a.view(np.uint32) == b.view(np.uint32)).all(axis=1)
