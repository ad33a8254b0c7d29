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

from vmkit.connectors.base import shares
from vmkit.records import RecordBatch, RecordId
from vmkit.retry import call_with_retry

log = logging.getLogger("vmkit.connectors.weaviate")

RUN = 50  # objects a seek reads
# (tenant, after uuid, limit) -> the objects that follow it, as a batch
ReadAfter = Callable[[str, str, int], RecordBatch]


def seek_sample(counts: dict[str, int], n: int, seed: int, read_after: ReadAfter) -> list[RecordBatch]:
    """About ``n`` records of the tenants in ``counts`` (tenant -> records), each by its
    share; a tenant whose share is under one record is sampled with that chance."""
    rng = random.Random(seed)
    batches: list[RecordBatch] = []
    for tenant, want in shares(counts, n, rng.random).items():
        seen = set[RecordId]()
        # Twice the seeks the count needs, at most: one past the last uuid comes back short.
        for _ in range(2 * math.ceil(want / RUN)):
            if len(seen) >= want:
                break
            after = str(uuid.UUID(int=rng.getrandbits(128)))
            run = call_with_retry(read_after, tenant, after, min(RUN, want - len(seen)), attempts=4)
            fresh = [i for i, rid in enumerate(run.ids) if rid not in seen]
            seen.update(run.ids)
            if fresh:
                batches.append(run.take(fresh))
    log.info("sampled %d records with cursor seeks", sum(map(len, batches)))
    return batches
