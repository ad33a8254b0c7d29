"""The batch pipeline: read ahead on one thread, write each batch's requests in parallel.

Reading and mapping batch k+1 overlaps writing batch k (a bounded queue keeps memory flat).
Writes never run ahead of checkpoints: a batch is handed back only when every one of its
requests was acknowledged, and the runner commits batches strictly in order, so the checkpoint
rule holds unchanged and a kill still replays at most the batch in flight.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from vmkit.connectors.base import Connector
from vmkit.connectors.batching import split_batch
from vmkit.core.errors import ConnectorError, InvalidData, SystemicRefusal
from vmkit.core.records import RecordBatch, Rejection
from vmkit.planning.plan import Plan
from vmkit.planning.transform import MappedBatch, map_batch

log = logging.getLogger("vmkit.migration.pipeline")
Retry = Callable[..., Any]


@dataclass
class ReadBatch:
    cursor_before: str | None
    cursor_after: str | None
    mapped: MappedBatch
    read_s: float
    raw: RecordBatch  # as the source gave it: sampled validation maps the target back to it


class Prefetcher:
    """Scans and maps ahead of the writer on a daemon thread, at most ``depth`` batches."""

    _DONE = object()

    def __init__(self, source: Connector, plan: Plan, cursor: str | None, retry: Retry,
                 depth: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source, plan, cursor, retry),
                                        name="vmkit-prefetch", daemon=True)
        self._thread.start()

    def _run(self, source: Connector, plan: Plan, cursor: str | None, retry: Retry) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                batch, nxt = retry(source.scan, cursor, plan.batch_size)
                item = ReadBatch(cursor, nxt, map_batch(batch, plan), time.monotonic() - t0, batch)
                if not self._put(item) or nxt is None:
                    break
                cursor = nxt
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        self._put(self._DONE)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[ReadBatch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class BatchWriter:
    """Writes one mapped batch: split to the target's limits, requests in parallel when the
    target takes parallel writes, records it refuses (InvalidData) found by bisection and
    dead-lettered with the server's reason.

    Bisection is for record-level refusals only. When one reason refuses ``max_reason_run``
    records in a row, or every record of a batch (at least ``_ALL_REFUSED_MIN``), the request
    or the collection is at fault (a dimension the collection does not take, a schema or quota
    error): SystemicRefusal stops the run before anything is dead-lettered.
    """

    _ALL_REFUSED_MIN = 10

    def __init__(self, target: Connector, retry: Retry, workers: int = 4, max_reason_run: int = 100) -> None:
        self.target = target
        self.retry = retry
        self.max_reason_run = max_reason_run
        self._run: tuple[str, int] = ("", 0)  # (reason with the record id taken out, records in a row)
        self._run_lock = threading.Lock()
        parallel = target.capabilities.parallel_writes and workers > 1
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vmkit-write") if parallel else None

    def write(self, mapped: MappedBatch) -> tuple[RecordBatch, list[Rejection]]:
        source_id = dict(zip(mapped.batch.ids, mapped.source_ids))
        parts = list(split_batch(mapped.batch, self.target.capabilities)) if len(mapped.batch) else []
        if self._pool is not None and len(parts) > 1:
            results = list(self._pool.map(self._write_part, parts))
        else:
            results = [self._write_part(p) for p in parts]
        written = [b for ok, _ in results for b in ok]
        refused = [r for _, bad in results for r in bad]
        self._refuse_if_systemic(refused, len(mapped.batch))
        rejected = list(mapped.rejected)
        rejected += [Rejection(source_id[rid], f"refused by target: {why}", "record",
                               mapped.source_namespace) for rid, why in refused]
        out = RecordBatch.concat(written) if len(written) != 1 else written[0]
        out.namespace = mapped.batch.namespace
        return out, rejected

    def _write_part(self, part: RecordBatch) -> tuple[list[RecordBatch], list[tuple[Any, str]]]:
        try:
            self.retry(self.target.upsert, part)
            self._count_refusal(None, "")
            return [part], []
        except InvalidData as exc:
            if len(part) == 1:
                self._ensure_absent(part)
                self._count_refusal(part.ids[0], str(exc))
                return [], [(part.ids[0], str(exc))]
            half = len(part) // 2
            a = self._write_part(part.take(range(half)))
            b = self._write_part(part.take(range(half, len(part))))
            return a[0] + b[0], a[1] + b[1]

    def _count_refusal(self, rid: Any, why: str) -> None:
        """Track refusals for one reason in a row (a write that lands ends the run)."""
        if rid is None:
            if self._run[1]:
                with self._run_lock:
                    self._run = ("", 0)
            return
        reason = _without_id(why, rid)
        with self._run_lock:
            self._run = (reason, self._run[1] + 1 if self._run[0] == reason else 1)
            run = self._run[1]
        if self.max_reason_run and run >= self.max_reason_run:
            raise SystemicRefusal(f"the target refused {run} records in a row for one reason, so the "
                                  f"request or the collection is at fault, not the records (nothing "
                                  f"was dead-lettered): {why}")

    def _refuse_if_systemic(self, refused: list[tuple[Any, str]], sent: int) -> None:
        if sent < self._ALL_REFUSED_MIN or len(refused) < sent:
            return
        reasons = {_without_id(why, rid) for rid, why in refused}
        if len(reasons) == 1:
            raise SystemicRefusal(f"the target refused all {sent} records of a batch for one reason, "
                                  f"so the request or the collection is at fault, not the records "
                                  f"(nothing was dead-lettered): {refused[0][1]}")

    def _ensure_absent(self, refused: RecordBatch) -> None:
        """A refused record may still have landed in an earlier, partly applied request of
        the bisection: remove it, so a dead-lettered record is never also on the target."""
        try:
            self.retry(self.target.delete, refused.ids, refused.namespace)
        except ConnectorError as exc:
            log.warning("could not remove refused record %r from the target: %s", refused.ids[0], exc)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _without_id(reason: str, rid: Any) -> str:
    """A refusal's reason with the record's own id taken out, so that one cause given for many
    records reads as one reason."""
    return reason.replace(repr(rid), "<id>").replace(str(rid), "<id>")
