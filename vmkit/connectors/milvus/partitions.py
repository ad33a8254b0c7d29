"""Partitions of a Milvus collection for the Dask executor: each namespace (a Milvus partition,
or a partition-key value), split into primary-key ranges at quantiles of its own keys (read in
key-ordered pages of the key field alone, a bounded sample of them kept), in proportion to its share of the records. A range
is read as the scan reads a namespace: ``pk > last`` pages in key order, bounded by the range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.milvus.read import WHOLE_PAGE, literal
from vmkit.connectors.partitions import Partition, sampled_ranges
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.milvus.connector import MilvusConnector


_SAMPLE = 32_768  # keys kept per namespace to cut ranges at (memory stays flat in the records)


def key_ranges(conn: "MilvusConnector", n: int) -> list[Partition] | None:
    spaces = sorted(conn._spaces() or {"": None}, key=str.encode)
    keys = {ns: _key_sample(conn, ns) for ns in spaces}
    total = sum(count for _, count in keys.values())
    if n < 2 or total < 2:
        return None
    out: list[Partition] = []
    for ns, (sample, count) in keys.items():
        if not count:  # kept, so that records written there after planning are still read
            out.append(Partition(f"{ns}/empty" if ns else "empty", ns))
            continue
        out += sampled_ranges(sample, max(1, round(n * count / total)), count, namespace=ns)
    return out


def scan_range(conn: "MilvusConnector", part: Partition, cursor: str | None,
               limit: int) -> tuple[RecordBatch, str | None]:
    pk = conn._layout().pk
    last = orjson.loads(cursor)["k"] if cursor else None
    rows = conn._query(_bounds(pk, last, part.lower, part.upper), part.namespace, limit, ordered=True)
    if not rows:
        return RecordBatch.empty(namespace=part.namespace), None
    batch = conn.to_batch(rows, part.namespace)
    return batch, (orjson.dumps({"k": rows[-1][pk]}).decode() if len(rows) == limit else None)


def _key_sample(conn: "MilvusConnector", namespace: str) -> tuple[list[Any], int]:
    """Every ``stride``-th key of the namespace, in key order (the stride doubles whenever the
    sample fills, so it is at most 2 x ``_SAMPLE`` keys), and how many keys it holds. The keys
    arrive sorted, so the sample's quantiles are the namespace's own within a stride."""
    pk, sample, count, stride, last = conn._layout().pk, [], 0, 1, None
    while True:
        rows = conn._query(_bounds(pk, last, None, None), namespace, WHOLE_PAGE, ordered=True, fields=[pk])
        for row in rows:
            if count % stride == 0:
                sample.append(row[pk])
            count += 1
            if len(sample) >= 2 * _SAMPLE:
                sample, stride = sample[::2], stride * 2
        if len(rows) < WHOLE_PAGE:
            return sample, count
        last = rows[-1][pk]


def _bounds(pk: str, last: Any, lower: Any, upper: Any) -> str:
    """The filter of a page: above the last key read (else from the range's lower bound), below
    its upper bound (None: open)."""
    terms = ([f"{pk} > {literal(last)}"] if last is not None else
             [f"{pk} >= {literal(lower)}"] if lower is not None else [])
    if upper is not None:
        terms.append(f"{pk} < {literal(upper)}")
    return " and ".join(terms)
