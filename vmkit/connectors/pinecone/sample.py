"""A sample of a Pinecone index spread over its records, without reading the index.

Profiling a source (``infer_schema``, dry runs) wants about 2,000 records from across it.
Reading the whole index for them would cost as much as the migration: Pinecone bills reads,
and fetch is limited to 100 requests a second (about 10,000 records a second). So each
namespace, by its share of the records, gives the ids nearest to random points, a few at a
time from many points, and only those ids are fetched. The first query, which places the
points, returns up to 10 whole records (values and metadata); the others ask for ids alone, so
no dimension comes near the response size limit. A namespace whose share is 10 or fewer (an
index of many small namespaces) is sampled by that one query, with no fetch: fetch is limited
per index, queries per namespace.

The points are random directions at the distance from the origin where the namespace's records
lie (the norm of those nearest one random direction): for cosine and dotproduct the distance
does not change the ranking, and for euclidean it keeps the points among the records rather
than far outside them, where every query would answer the same edge of the data. Records far
from that sphere are less likely to be picked: this is a spread sample, not a uniform one.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from vmkit.connectors.base import shares
from vmkit.core.records import RecordBatch
from vmkit.core.retry import call_with_retry

if TYPE_CHECKING:
    from vmkit.connectors.pinecone.connector import PineconeConnector

log = logging.getLogger("vmkit.connectors.pinecone.connector")

PER_QUERY = 25  # ids a point gives: fewer, from more points, spread the sample wider
_LOCATE = 10  # records (with values) whose norm places the points
QUERIES_AT_ONCE = 8
# Namespaces sampled at once. Each takes a few round trips in sequence (locate, query, fetch),
# and an index may hold thousands of small ones, so one at a time would take longer than
# reading the index.
NAMESPACES_AT_ONCE = 8
_ATTEMPTS = 4


def query_sample(conn: PineconeConnector, counts: dict[str, int], n: int, seed: int
                 ) -> list[RecordBatch]:
    """About ``n`` records of the namespaces in ``counts`` (namespace -> records), each
    namespace by its share; one whose share is under one record is sampled with that chance."""
    rng, dimension = np.random.default_rng(seed), conn.dimension()
    wanted = shares(counts, n, rng.random)
    # A generator of its own for each namespace: the sample does not depend on which
    # namespace's answers come first.
    rngs = dict(zip(wanted, rng.spawn(len(wanted))))
    with ThreadPoolExecutor(QUERIES_AT_ONCE, thread_name_prefix="vmkit-pinecone-sample") as queries, \
            ThreadPoolExecutor(NAMESPACES_AT_ONCE, thread_name_prefix="vmkit-pinecone-sample-ns") as spaces:
        def sample_namespace(ns: str) -> RecordBatch:
            located, more = _nearest(conn, ns, wanted[ns], dimension, rngs[ns], queries)
            fetched = call_with_retry(conn.fetch, more, ns, attempts=_ATTEMPTS) if more else None
            return RecordBatch.concat([conn.records_of(located, ns), fetched or RecordBatch.empty(dimension, ns)])

        batches = [b for b in spaces.map(sample_namespace, wanted) if len(b)]
    log.info("sampled %d records with queries (%d namespaces)", sum(map(len, batches)), len(batches))
    return batches


def _nearest(conn: PineconeConnector, ns: str, want: int, dimension: int,
             rng: np.random.Generator, queries: ThreadPoolExecutor) -> tuple[list[Any], list[str]]:
    """``want`` records of namespace ``ns`` (fewer if the points keep finding the same ones):
    the whole records the locating query returned, and the ids found after them."""
    first = _direction(rng, dimension)
    located = call_with_retry(conn.nearest, ns, first, min(want, _LOCATE), True, attempts=_ATTEMPTS)
    if len(located) >= want or not located:
        return located[:want], []
    found = dict.fromkeys(m.id for m in located)
    radius = float(np.mean([np.linalg.norm(m.values) for m in located]))
    # A few more points than the count needs: neighbourhoods of nearby points overlap.
    points = [radius * _direction(rng, dimension)
              for _ in range(math.ceil((want - len(found)) / PER_QUERY) + 2)]
    answers = queries.map(lambda p: call_with_retry(conn.nearest, ns, p, PER_QUERY, False,
                                                    attempts=_ATTEMPTS), points)
    for matches in answers:  # in the points' order, so a seed gives one sample
        found.update(dict.fromkeys(m.id for m in matches))
    return located, list(found)[len(located):want]


def _direction(rng: np.random.Generator, dimension: int) -> np.ndarray:
    v = rng.standard_normal(dimension)
    return v / (np.linalg.norm(v) or 1.0)
