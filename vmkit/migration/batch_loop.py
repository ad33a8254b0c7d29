"""The batch loop of a run in this process: read ahead (pipeline.Prefetcher), write
(pipeline.BatchWriter), checkpoint each batch in one transaction after the target acknowledged
it, validate a sample, and report progress. ``vmkit.migration.distributed.dask_loop`` is the
same loop on a Dask cluster."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from vmkit.connectors.base import Connector
from vmkit.core import crashpoints
from vmkit.core.errors import SystemicRefusal
from vmkit.core.fingerprint import batch_checksum
from vmkit.migration.guards import RejectionBreaker, roll_back_if_sampling_fails
from vmkit.migration.pipeline import BatchWriter, Prefetcher
from vmkit.migration.validate import is_sampled, sample_rows, validate_sample
from vmkit.planning.plan import Plan
from vmkit.state.store import BatchCommit

if TYPE_CHECKING:
    from vmkit.migration.runner import Migration

log = logging.getLogger("vmkit.migration.runner")


@dataclass
class Progress:
    """What a progress view needs after each batch."""

    batches: int
    records_read: int
    records_written: int
    records_rejected: int
    expected: int
    seconds: float


def copy_batches(mig: "Migration", source: Connector, target: Connector, plan: Plan, lease: str,
                 max_batches: int | None, on_batch: "Callable[[Progress], None] | None") -> bool:
    """The in-process loop: batches until the scan ends (True) or a stop / max_batches (False)."""
    opts = mig.options
    rec = mig.store.get(mig.id)
    done_here, started = 0, time.monotonic()
    freshness = mig._freshness(target)
    reader = Prefetcher(source, plan, rec.cursor, mig._retry, depth=opts.prefetch)
    writer = BatchWriter(target, mig._retry, workers=opts.write_workers,
                         max_reason_run=opts.max_reason_run)
    breaker = RejectionBreaker(mig.store, mig.id, opts)
    mig._phase("copying")
    try:
        for item in reader:
            started += mig._hold_while_paused(lease)  # time paused is not copying time
            if mig._should_stop() or (max_batches is not None and done_here >= max_batches):
                log.info("migration %s stopped after batch %d; resume with "
                         "`vmkit migrate resume --id %s`", mig.id, rec.batches + done_here, mig.id)
                return False
            t0 = time.monotonic()
            try:
                written, rejected = writer.write(item.mapped)
            except SystemicRefusal as exc:
                mig.store.record_error(mig.id, None, "terminal", f"{type(exc).__name__}: {exc}")
                raise
            log.debug("batch %d acknowledged (%d written)", rec.batches + done_here + 1, len(written))
            crashpoints.hit("after_ack")
            if item.cursor_after is None:
                crashpoints.hit("last_batch")
            seq = mig.store.commit_batch(mig.id, lease, BatchCommit(
                item.cursor_before, item.cursor_after, item.mapped.read, len(written), rejected,
                batch_checksum(written), item.read_s + time.monotonic() - t0),
                scan_done=item.cursor_after is None)
            log.debug("batch %d committed", seq)
            done_here += 1
            breaker.record(item.mapped.read, rejected)
            if opts.sample_rate > 0 and len(written) and is_sampled(mig.id, seq, opts.sample_rate):
                crashpoints.hit("during_validation")
                mig._phase("validating")
                stats = validate_sample(sample_rows(written, mig.id, seq, opts.sample_records), target, plan,
                                        min_similarity=opts.min_similarity, freshness_s=freshness,
                                        retry=mig._retry, source_batch=item.raw)
                mig.store.record_validation(mig.id, seq, stats.to_dict())
                roll_back_if_sampling_fails(mig.store, mig.id, opts)
                mig._phase("copying")
            if on_batch is not None:
                on_batch(mig._progress(plan, time.monotonic() - started))
        return True
    finally:
        reader.close()
        writer.close()
