"""Deterministic synthetic records: for the demo, tests and benchmarks.

``synthetic_batch(seed, start, n, dim)`` always returns the same records for the same
arguments, so a dataset of any size can be regenerated on demand instead of being held.
"""

from __future__ import annotations

import uuid

import numpy as np

from vmkit.connectors.base import TargetSpec
from vmkit.core.records import Metadata, RecordBatch, RecordId

_TAGS = ["news", "sports", "tech", "science", "art", "travel", "food", "health"]
_LANGS = ["en", "de", "fr", "ja", "pt"]


def record_id(seed: int, i: int) -> RecordId:
    """Mixed id kinds, as real collections have: even rows ints, odd rows UUIDs."""
    if i % 2 == 0:
        return i
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"vmkit-demo:{seed}:{i}"))


def record_metadata(rng: np.random.Generator, i: int) -> Metadata:
    meta: Metadata = {
        "title": f"document {i}",
        "lang": _LANGS[i % len(_LANGS)],
        "views": int(rng.integers(0, 1_000_000)),
        "score": round(float(rng.random()), 6),
        "published": bool(i % 3),
        "tags": [_TAGS[j] for j in rng.choice(len(_TAGS), size=1 + i % 3, replace=False)],
        "source": {"site": f"site{i % 17}.example", "rank": i % 100},
    }
    if i % 10 == 0:
        meta["summary"] = None  # nulls happen
    if i % 7 == 0:
        meta["extra_note"] = "ünïcödé ✓"
    return meta


def synthetic_batch(seed: int, start: int, n: int, dim: int, namespace: str = "") -> RecordBatch:
    rng = np.random.default_rng([seed, start])
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    ids = [record_id(seed, start + k) for k in range(n)]
    return RecordBatch(ids, vectors, [record_metadata(rng, start + k) for k in range(n)], namespace=namespace)


def fill(uri: str, count: int, dim: int, *, metric: str = "cosine", seed: int = 7,
         chunk: int = 1000) -> None:
    """Create the collection at ``uri`` and write ``count`` synthetic records into it."""
    from vmkit.connectors import connect

    with connect(uri) as conn:
        if conn.describe() is None:
            conn.create(TargetSpec(getattr(conn, "collection", "demo"), dim, metric))
        for start in range(0, count, chunk):
            conn.upsert(synthetic_batch(seed, start, min(chunk, count - start), dim))
