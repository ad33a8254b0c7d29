"""A Pinecone index in parts several processes read at once: each namespace, and a big
namespace's id prefixes (found as the whole-index scan finds them: pinecone_split), each listed
with its own pagination token as its cursor and fetched in the listing's order.

A namespace gets parts in proportion to its share of the records (at least one). A namespace
created after the plan was made is not in it: full verification's count reconciliation names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from vmkit.connectors.partitions import Partition
from vmkit.connectors.pinecone.split import LIST_PAGE, PrefixSplit
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.pinecone.connector import PineconeConnector

PLAN_PROBES = 256


def namespace_parts(conn: PineconeConnector, n: int) -> list[Partition] | None:
    if conn.params.get("ids_file"):  # a pod index read from a file of ids: one stream
        return None
    counts = conn.namespace_names()
    if not counts:
        return None
    total = max(1, sum(counts.values()))
    out: list[Partition] = []
    for ns in sorted(counts, key=str.encode):
        want = max(1, round(n * counts[ns] / total))
        prefixes = [""]
        if want > 1:
            # Planning runs once: a namespace may spend up to PLAN_PROBES probes on its split
            # (the scan's own budget, two a list page, would leave most UUID namespaces whole).
            budget_as = max(counts[ns], PLAN_PROBES * LIST_PAGE // 2)
            prefixes, _ = PrefixSplit(conn._list_scan.list_ids, want).prefixes(ns, budget_as)
        out += [Partition(orjson.dumps([ns, p]).decode(), ns, p or None, None, counts[ns] // len(prefixes))
                for p in prefixes]
    return out


def scan_prefix(conn: PineconeConnector, part: Partition, cursor: str | None,
                limit: int) -> tuple[RecordBatch, str | None]:
    """Up to ``limit`` records of the part after ``cursor`` (its listing's token, JSON)."""
    ns, prefix = part.namespace, part.lower or ""
    token = orjson.loads(cursor) if cursor is not None else None
    ids, token = conn._list_scan.list_ids(ns, prefix, token, limit)
    batch = conn.fetch_listed(ids, ns) if ids else RecordBatch.empty(conn.dimension())
    batch.namespace = ns
    return batch, (orjson.dumps(token).decode() if token else None)
