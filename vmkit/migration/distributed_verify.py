"""Full verification on Dask: each partition checked on a worker, the outcomes merged by the
coordinator.

A worker reads its partition of the source (``scan_partition``), maps every batch through the
plan, fetches the records it maps to from the target by id, and compares content digests
(vmkit.core.fingerprint, hashed as vmkit.migration.verification hashes both sides); a digest
that differs or a record that is absent gets the exact re-check of the one-process
verification (``recheck``: vectors to 1e-6 after normalizing where the target normalizes,
metadata by value, an absent id waits out eventual consistency). Records the target refused
during the copy (the dead-letter table) are expected absent, as in one process.

The coordinator merges the partitions' outcomes and reconciles the records read per namespace
with the source's own counts before and after. The workers only look up what the source
names, so a record on the target that no source record maps to (an extra) shows only in the
target's count: when the target's count is not exactly the records found present, or the target
cannot hand records back (a fingerprint sink), the merged outcome is not used and the
coordinator's one-process verification runs instead (it names every extra).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vmkit.connectors.partitions import Partition
from vmkit.core.errors import TerminalError
from vmkit.core.fingerprint import batch_digests
from vmkit.core.interpreter import tuned_for_io
from vmkit.core.records import RecordBatch
from vmkit.migration.chunk import ChunkTask, opened, retry_for
from vmkit.migration.compare import compare_opts
from vmkit.migration.digest_table import ABSENT, DIFFERS
from vmkit.migration.recheck import recheck, sort_key
from vmkit.migration.verification import (
    Key,
    Suspect,
    Verification,
    _reconcile,
    map_source_batch,
    source_counts,
)
from vmkit.state import partitions as ledger

if TYPE_CHECKING:
    from vmkit.connectors.base import Connector
    from vmkit.migration.runner import Migration
    from vmkit.planning.plan import Plan

log = logging.getLogger("vmkit.migration.distributed_verify")


@dataclass
class VerifyTask:
    chunk: ChunkTask  # the migration and the partition (its cursor unused)
    dead: list[Key]  # (namespace, source id) the target refused: expected absent
    freshness_s: float


@dataclass
class PartitionCheck:
    result: Verification
    read: dict[str, int]  # records read per source namespace


def verify_partition(task: VerifyTask) -> PartitionCheck:
    """On a worker: every record of one partition, looked up on the target and compared."""
    op = opened(task.chunk)
    with tuned_for_io(op.opts.tune_interpreter):
        return _check(task, op.source, op.target, op.plan, retry_for(op.opts))


def _check(task: VerifyTask, source: Connector, target: Connector, plan: Plan, retry: Any) -> PartitionCheck:
    part = Partition.from_dict(task.chunk.partition)
    dead = {tuple(k) for k in task.dead}
    opts = compare_opts(plan)
    target_opts = {**opts, "keep_unit_rows": True}  # as verification hashes the target's records
    result, read = Verification(), dict[str, int]()
    suspects: dict[Key, Suspect] = {}
    statuses: dict[Key, int] = {}
    cursor: str | None = None
    while True:
        raw, cursor = retry(source.scan_partition, part, cursor, plan.batch_size)
        mapped = map_source_batch(raw, plan, result, read)
        out = mapped.batch
        live = [i for i in range(len(out)) if (mapped.source_namespace, mapped.source_ids[i]) not in dead]
        result.rejected += len(out) - len(live)
        if live:
            want = dict(batch_digests(out.take(live), **opts))
            got: RecordBatch = retry(target.fetch, [out.ids[i] for i in live], out.namespace)
            got.namespace = out.namespace
            have = dict(batch_digests(got, **target_opts))
            for i in live:
                key = (out.namespace, out.ids[i])
                if have.get(key) == want[key]:
                    result.matched += 1
                    continue
                sparse = None if out.sparse is None else out.sparse[i]
                named = {n: v[i].copy() for n, v in out.dense_vectors().items()} if out.named else {}
                suspects[key] = (out.vectors[i].copy(), out.metadata[i], sparse, named)
                statuses[key] = ABSENT if key not in have else DIFFERS
        if cursor is None:
            break
    recheck(suspects, target, opts, task.freshness_s, result, retry, statuses)
    return PartitionCheck(result, read)


def verify_on_dask(mig: Migration, client: Any, source: Connector, target: Connector, plan: Plan,
                   task: ChunkTask) -> Verification | None:
    """Every partition verified on the workers, merged; None when the merged outcome cannot
    stand alone (see the module docstring) and the one-process verification must run."""
    started = time.monotonic()
    before = source_counts(source, mig._retry)
    dead = sorted(mig.store.refused_keys(mig.id), key=sort_key)
    freshness = mig._freshness(target)
    futures = [client.submit(verify_partition, VerifyTask(replace(task, partition=r.spec), list(dead), freshness),
                             pure=False, key=f"vmkit-verify-{r.key}-{time.monotonic_ns()}")
               for r in ledger.rows(mig.store, mig.id)]
    try:
        checks: list[PartitionCheck] = client.gather(futures)
    except TerminalError as exc:  # e.g. a target that cannot return records
        log.warning("verification on the workers not possible (%s): verifying in this process", exc)
        return None
    merged, read = Verification(), dict[str, int]()
    for check in checks:
        r = check.result
        merged.source_records += r.source_records
        merged.matched += r.matched
        merged.rejected += r.rejected
        merged.missing += r.missing
        merged.mismatched += r.mismatched
        merged.unreadable += r.unreadable
        for ns, n in check.read.items():
            read[ns] = read.get(ns, 0) + n
    merged.missing.sort(key=sort_key)
    merged.mismatched.sort(key=lambda m: sort_key(m[0]))
    _reconcile(merged, before, source_counts(source, mig._retry), read)
    merged.target_records = int(mig._retry(target.count))
    present = merged.matched + len(merged.mismatched)
    if merged.target_records != present:
        log.info("the target holds %d records, %d of them found from the source: verifying in this "
                 "process to name the others", merged.target_records, present)
        return None
    merged.seconds = time.monotonic() - started
    log.info("%s (on %d partitions)", next(iter(merged.lines())), len(checks))
    return merged
