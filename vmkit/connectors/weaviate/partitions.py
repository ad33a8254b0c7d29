"""A Weaviate collection in parts several processes read at once: each tenant, and a big
tenant's uuid ranges, each read with the ``after`` cursor (the only order Weaviate's cursor
API gives: uuid order, with no filter beside it).

A range ``[lower, upper)`` is read by seeking ``after`` the uuid just below ``lower`` and
stopping at the first uuid at or past ``upper``: its cursor is the last uuid it kept. Ranges
split the uuid space evenly, which fits how Weaviate ids are made (random uuid4, or uuid5
hashes, as vmkit's own). A tenant gets ranges in proportion to its share of the records. With
``tenants=activate`` the collection is not split: a tenant woken for the scan is put back by
the one scan that woke it (weaviate_tenants).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import orjson

from vmkit.connectors.partitions import Partition
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.weaviate.connector import WeaviateConnector

_SPACE = 1 << 128


def tenant_ranges(conn: WeaviateConnector, n: int) -> list[Partition] | None:
    if conn._activity.policy == "activate":
        return None
    counts = conn.namespace_counts()
    total = sum(counts.values())
    if not total:
        return None
    out: list[Partition] = []
    for tenant in sorted(counts, key=str.encode):
        k = max(1, round(n * counts[tenant] / total))
        for i in range(k):
            lower = None if i == 0 else str(uuid.UUID(int=i * _SPACE // k))
            upper = None if i == k - 1 else str(uuid.UUID(int=(i + 1) * _SPACE // k))
            out.append(Partition(orjson.dumps([tenant, i]).decode(), tenant, lower, upper, counts[tenant] // k))
    return out


def scan_range(conn: WeaviateConnector, part: Partition, cursor: str | None,
               limit: int) -> tuple[RecordBatch, str | None]:
    tenant = part.namespace
    if cursor is not None:
        after = orjson.loads(cursor)
    elif part.lower is not None:  # just below the range: ``after`` is exclusive
        after = str(uuid.UUID(int=uuid.UUID(part.lower).int - 1))
    else:
        after = None
    facts = conn._schema()
    objects = conn._fetch_objects(tenant, facts, "scan", limit=limit, after=after)
    kept = objects if part.upper is None else [o for o in objects if str(o.uuid) < part.upper]
    if kept:
        batch = conn._to_batch(kept, facts, tenant)
    else:
        batch = RecordBatch.empty(conn._dim or 0)
        batch.namespace = tenant
    done = len(objects) < limit or len(kept) < len(objects)
    return batch, (None if done else orjson.dumps(str(kept[-1].uuid)).decode())
