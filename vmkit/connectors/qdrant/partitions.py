"""Qdrant collections in id ranges, read side by side (the Dask executor).

Qdrant orders points by id for ``scroll``: integer ids first, then UUIDs (the server's
``ExtendedPointId`` is ``NumId(u64) | Uuid``, compared in that order; the local mode's
``LocalCollection.scroll`` sorts by the same key), and ``offset`` starts a page at an id. A
partition is ``[lower, upper)`` in that order, cut at quantiles of Qdrant's own random sample
(``SampleQuery``); the first range is open below and the last open above, so ids the sample
missed are still read once. A sample holding both kinds of id gives one partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.partitions import Partition, sampled_ranges
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.qdrant.connector import QdrantConnector

_SAMPLE = 4096  # ids sampled to place the cuts


def order_key(point_id: Any) -> tuple[int, Any]:
    return (0, point_id) if isinstance(point_id, int) else (1, str(point_id))


def id_ranges(conn: "QdrantConnector", n: int) -> list[Partition] | None:
    total = conn.count()
    if n < 2 or total < 2 * n:
        return None
    ids = [rid for batch in conn.sample(min(_SAMPLE, total)) for rid in batch.ids]
    if len({isinstance(i, int) for i in ids}) != 1:
        return None
    parts = sampled_ranges(ids, n, total)
    return parts if len(parts) > 1 else None


def scan_range(conn: "QdrantConnector", part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
    """One page of ``part`` from its cursor (the next id to read), ending at its upper bound."""
    offset = orjson.loads(cursor) if cursor is not None else part.lower
    points, nxt = conn.scroll_page(offset, limit)
    upper = None if part.upper is None else order_key(part.upper)
    inside = [p for p in points if upper is None or order_key(p.id) < upper]
    done = nxt is None or len(inside) < len(points) or (upper is not None and order_key(nxt) >= upper)
    return conn._to_batch(inside), None if done else orjson.dumps(nxt).decode()
