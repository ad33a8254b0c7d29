"""The worker's side of the Dask executor: copy one chunk of one partition and say what happened.

A worker gets plain data only (URIs, the plan as JSON, the options, the partition and its
cursor) and returns an acknowledgement: the cursor after the chunk and, per batch, counts,
rejections, the written records' checksum and sampled validation statistics. It never opens
the state store: the coordinator (vmkit.migration.distributed) commits acknowledgements in
order. Everything a chunk does is an idempotent upsert from a committed cursor, so running it
again (a worker lost, a coordinator restarted) changes nothing on the target.

Connectors are opened once per worker process and kept (``_OPEN``), as a web worker keeps its
database pool: a chunk costs its reads and writes, not a client's start-up.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vmkit.connectors import connect, open_target
from vmkit.connectors.base import Connector
from vmkit.connectors.partitions import Partition
from vmkit.core.fingerprint import batch_checksum
from vmkit.core.interpreter import tuned_for_io
from vmkit.core.options import MigrationOptions
from vmkit.core.retry import call_with_retry
from vmkit.migration.pipeline import BatchWriter
from vmkit.migration.validate import sample_rows, validate_sample
from vmkit.planning.plan import Plan
from vmkit.planning.transform import map_batch
from vmkit.state.store import BatchCommit

log = logging.getLogger("vmkit.migration.chunk")


@dataclass
class ChunkTask:
    migration_id: str
    source_uri: str
    target_uri: str
    plan_json: str
    plan_hash: str
    options: dict[str, Any]
    partition: dict[str, Any]
    cursor: str | None
    batches: int  # at most this many batches in the chunk
    processes: int  # workers sharing the source's and target's rate limits


@dataclass
class BatchAck(BatchCommit):
    """A batch as the coordinator commits it, with the worker's sampled validation."""

    validation: dict[str, Any] | None = None


@dataclass
class ChunkAck:
    key: str
    cursor_before: str | None
    batches: list[BatchAck] = field(default_factory=list)
    worker: str = ""

    @property
    def cursor_after(self) -> str | None:
        return self.batches[-1].cursor_after if self.batches else self.cursor_before

    @property
    def done(self) -> bool:
        return bool(self.batches) and self.batches[-1].cursor_after is None


@dataclass
class _Open:
    source: Connector
    target: Connector
    plan: Plan
    writer: BatchWriter
    opts: MigrationOptions


_OPEN: dict[tuple[str, str, str, int], _Open] = {}
_KEEP_OPEN = 4  # migrations a worker keeps its connectors open for
_LOCK = threading.Lock()


def opened(task: ChunkTask) -> _Open:
    """The connectors, plan and writer of a task's migration in this worker process (cached)."""
    key = (task.source_uri, task.target_uri, task.plan_hash, task.processes)
    with _LOCK:
        if key not in _OPEN and len(_OPEN) >= _KEEP_OPEN:  # a long-lived worker: close the oldest
            old = _OPEN.pop(next(iter(_OPEN)))
            old.writer.close()
            old.source.close()
            old.target.close()
        if key not in _OPEN:
            opts = MigrationOptions.from_dict(task.options)
            plan = Plan.from_json(task.plan_json)
            source = connect(task.source_uri)
            target = open_target(task.target_uri, plan.target_routes)
            for conn in (source, target):
                conn.share_limits(task.processes)
            writer = BatchWriter(target, retry_for(opts), workers=opts.write_workers,
                                 max_reason_run=opts.max_reason_run)
            _OPEN[key] = _Open(source, target, plan, writer, opts)
        return _OPEN[key]


def retry_for(opts: MigrationOptions) -> Callable[..., Any]:
    def call(fn: Callable[..., Any], *args: Any) -> Any:
        return call_with_retry(fn, *args, attempts=opts.retry_attempts, initial_s=opts.retry_initial_s,
                               cap_s=opts.retry_cap_s)
    return call


def is_sampled(migration_id: str, key: str, cursor: str | None, rate: float) -> bool:
    """Deterministic per (migration, partition, batch start): a chunk run again samples the
    same batches. (Not every partition's first batch: on an eventually consistent target each
    sample waits for the writes to show.)"""
    return random.Random(f"{migration_id}:{key}:{cursor}").random() < rate


def run_chunk(task: ChunkTask) -> ChunkAck:
    """Read, map, write, fingerprint and validate up to ``task.batches`` batches of one
    partition from ``task.cursor``. Raises what the connectors raise (the coordinator records
    it and stops the run, resumable)."""
    op = opened(task)
    with tuned_for_io(op.opts.tune_interpreter):  # as a run in one process (vmkit.core.interpreter)
        return _copy(task, op)


def _copy(task: ChunkTask, op: _Open) -> ChunkAck:
    part = Partition.from_dict(task.partition)
    retry = retry_for(op.opts)
    freshness = op.opts.freshness_s if op.opts.freshness_s is not None else (
        10.0 if op.target.capabilities.eventually_consistent else 0.0)
    ack = ChunkAck(part.key, task.cursor, worker=f"{os.uname().nodename}:{os.getpid()}")
    cursor = task.cursor
    for _ in range(task.batches):
        t0 = time.monotonic()
        raw, nxt = retry(op.source.scan_partition, part, cursor, op.plan.batch_size)
        mapped = map_batch(raw, op.plan)
        written, rejected = op.writer.write(mapped)
        stats = None
        if op.opts.sample_rate > 0 and len(written) and is_sampled(
                task.migration_id, part.key, cursor, op.opts.sample_rate):
            picked = sample_rows(written, task.migration_id, f"{part.key}:{cursor}", op.opts.sample_records)
            stats = validate_sample(picked, op.target, op.plan, min_similarity=op.opts.min_similarity,
                                    freshness_s=freshness, retry=retry, source_batch=raw).to_dict()
        ack.batches.append(BatchAck(cursor, nxt, mapped.read, len(written), rejected,
                                    batch_checksum(written), time.monotonic() - t0, stats))
        if nxt is None:
            break
        cursor = nxt
    log.debug("partition %s: chunk of %d batches done", part.key, len(ack.batches))
    return ack


def probe(source_uri: str, target_uri: str) -> str | None:
    """On a worker, before any chunk: can it open both sides? None, or why not (one line)."""
    try:
        with connect(source_uri) as src:
            if src.describe() is None:
                return f"the source {source_uri} does not exist as this worker sees it"
        with connect(target_uri) as dst:
            dst.describe()
    except Exception as exc:  # reported, with the worker's address, by the coordinator
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None
