"""A sample of a Weaviate collection spread over it, without reading it all.

Weaviate's ``after`` cursor seeks to any uuid, present or not (the shard's object bucket is
keyed by uuid), and lists objects in uuid order from there. So each tenant, by its share of the
records, gives short runs of objects after random uuids. Random (v4) and hashed (v5) uuids
carry no order of their own, so consecutive objects are as good as random ones; uuids that
grow with time (v1, v7) make each run a stretch of neighbours in time, and the many runs still
spread over the whole span.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import repeat

from vmkit.connectors.base import shares
from vmkit.core.records import RecordBatch, RecordId
from vmkit.core.retry import call_with_retry

log = logging.getLogger("vmkit.connectors.weaviate.connector")

RUN = 50  # objects a seek reads
# Seeks in flight, and tenants sampled, at once: each seek is a round trip, and a collection
# may hold thousands of small tenants.
SEEKS_AT_ONCE = 8
TENANTS_AT_ONCE = 8
# (tenant, after uuid, limit) -> the objects that follow it, as a batch
ReadAfter = Callable[[str, str, int], RecordBatch]


def seek_sample(counts: dict[str, int], n: int, seed: int, read_after: ReadAfter) -> list[RecordBatch]:
    """About ``n`` records of the tenants in ``counts`` (tenant -> records), each by its
    share; a tenant whose share is under one record is sampled with that chance."""
    rng = random.Random(seed)
    wanted = shares(counts, n, rng.random)
    # A generator of its own for each tenant: the sample does not depend on which tenant's
    # answers come first.
    rngs = {tenant: random.Random(rng.getrandbits(64)) for tenant in wanted}
    with ThreadPoolExecutor(SEEKS_AT_ONCE, thread_name_prefix="vmkit-weaviate-seek") as seeks, \
            ThreadPoolExecutor(TENANTS_AT_ONCE, thread_name_prefix="vmkit-weaviate-sample") as tenants:
        def sample_tenant(tenant: str) -> list[RecordBatch]:
            return _runs(tenant, wanted[tenant], rngs[tenant], read_after, seeks)

        batches = [b for runs in tenants.map(sample_tenant, wanted) for b in runs]
    log.info("sampled %d records with cursor seeks", sum(map(len, batches)))
    return batches


def _runs(tenant: str, want: int, rng: random.Random, read_after: ReadAfter,
          seeks: ThreadPoolExecutor) -> list[RecordBatch]:
    """Up to ``want`` distinct records of ``tenant``: runs after random uuids, as many seeks
    at once as the count still needs, in rounds, twice the seeks it needs at most (one past
    the last uuid comes back short)."""
    seen, batches = set[RecordId](), list[RecordBatch]()
    left = 2 * math.ceil(want / RUN)
    while len(seen) < want and left:
        afters = [str(uuid.UUID(int=rng.getrandbits(128)))
                  for _ in range(min(left, math.ceil((want - len(seen)) / RUN)))]
        left -= len(afters)
        limit = min(RUN, want - len(seen))
        runs = seeks.map(partial(call_with_retry, read_after, tenant, attempts=4), afters, repeat(limit))
        for run in runs:  # in the seeks' order, so a seed gives one sample
            fresh = [i for i, rid in enumerate(run.ids) if rid not in seen][: want - len(seen)]
            seen.update(run.ids[i] for i in fresh)
            if fresh:
                batches.append(run.take(fresh))
    return batches
