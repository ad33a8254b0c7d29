"""The Dask executor's coordinator: runs a migration's partitions on a Dask cluster.

The coordinator is the process that holds the runner lease and alone writes the state store.
It keeps one chunk of each unfinished partition in flight (vmkit.migration.chunk.run_chunk on
a worker), commits each acknowledgement in one transaction (vmkit.state.partitions), and
submits the partition's next chunk from the cursor it just committed; so per partition, chunks
run and commit in order. A worker lost mid-chunk: Dask runs the task again (or it is submitted
again from the committed cursor), and its writes are idempotent upserts. The coordinator
killed: ``vmkit migrate resume --workers N`` submits every partition from its committed cursor.
Stop requests are honoured between chunks: no new chunk starts, the ones in flight commit.

``cluster`` is a ``distributed.Client``, a cluster object (``LocalCluster``, ...), a scheduler
address (``tcp://HOST:8786``), or None for a LocalCluster of ``workers`` processes started here.
Requires ``pip install 'vmkit[dask]'``; shapes from distributed 2026.8 (``Client(address,
timeout=...)``, ``as_completed``, ``KilledWorker`` after a task's workers died
``distributed.scheduler.allowed-failures`` times).
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable

from vmkit.connectors.base import Connector
from vmkit.connectors.partitions import whole
from vmkit.core.errors import ConfigError, StateError
from vmkit.migration.chunk import ChunkAck, ChunkTask, probe, run_chunk
from vmkit.migration.guards import RejectionBreaker, roll_back_if_sampling_fails
from vmkit.planning.plan import Plan
from vmkit.state import partitions as ledger
from vmkit.state.store import BatchCommit

if TYPE_CHECKING:
    from vmkit.migration.runner import Migration, Progress

log = logging.getLogger("vmkit.migration.distributed")

CONNECT_TIMEOUT_S = 5.0  # a scheduler that does not answer in this long is reported, not waited for
_RESUBMITS = 3  # times a chunk whose workers all died is submitted again


class ChunkSizer:
    """Batches per chunk. A fixed ``chunk_batches`` is kept; 0 sizes chunks to take about
    ``CHUNK_S`` seconds on a worker, from the batch times the acknowledgements report. A task
    costs the coordinator's process 5-10 ms of CPU (scheduler included), which on a fast pair
    of stores (a chunk of 32 batches in 0.15 s) was 0.7 CPU s of a 2M-record run, taken from the
    workers on a small machine (about a second a chunk: 0.35 s; bench/README section 11); on a slow store (Pinecone, 16 batches in 5 s) a shorter chunk means
    less replayed after a lost worker and a sooner Stop."""

    CHUNK_S = 1.0
    FIRST = 4  # batches in the first chunks, before any batch was timed
    MOST = 256

    def __init__(self, fixed: int) -> None:
        self.fixed = max(0, fixed)
        self.batch_s: float | None = None  # smoothed seconds per batch on one worker

    def observe(self, ack: ChunkAck) -> None:
        if ack.batches and not self.fixed:
            per_batch = sum(b.duration_s for b in ack.batches) / len(ack.batches)
            self.batch_s = per_batch if self.batch_s is None else 0.7 * self.batch_s + 0.3 * per_batch

    def batches(self) -> int:
        if self.fixed:
            return self.fixed
        if self.batch_s is None:
            return self.FIRST
        return max(1, min(self.MOST, round(self.CHUNK_S / max(self.batch_s, 1e-6))))


def require_dask() -> None:
    """ConfigError naming the extra when dask.distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError("the Dask executor needs dask.distributed: pip install 'vmkit[dask]'") from None


def refuse_single_process(source: Connector, target: Connector) -> None:
    """ConfigError, before anything is written, if either side cannot be opened by workers."""
    for role, conn in (("source", source), ("target", target)):
        why = conn.single_process()
        if why:
            raise ConfigError(f"the Dask executor cannot use {conn.uri} as its {role}: {why}; "
                              f"run this migration without --workers/--scheduler")


def open_client(cluster: Any, workers: int | None, timeout_s: float = CONNECT_TIMEOUT_S) -> tuple[Any, ExitStack]:
    """A connected ``distributed.Client`` and what closes what was started for it."""
    require_dask()
    from distributed import Client

    stack = ExitStack()
    if isinstance(cluster, Client):
        return cluster, stack
    if cluster is None:
        cluster = stack.enter_context(local_cluster(workers or 2))
    if isinstance(cluster, str):
        try:
            client = Client(cluster, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            stack.close()
            raise ConfigError(f"no Dask scheduler answered at {cluster} within {timeout_s:.0f} s "
                              f"({type(exc).__name__}); nothing was copied, and the migration resumes "
                              f"once the scheduler is up") from None
    else:
        client = Client(cluster)
    stack.callback(client.close)
    return client, stack


def local_cluster(workers: int, dashboard: bool = True) -> Any:
    """A LocalCluster of ``workers`` single-threaded processes (a dashboard on a free port when
    bokeh is installed). Its workers keep glibc's own malloc trimming: distributed sets
    MALLOC_TRIM_THRESHOLD_=65536 in workers (``distributed.nanny.pre-spawn-environ``), which
    also turns off glibc's dynamic mmap threshold, so every batch-sized numpy array is a fresh
    mmap whose pages fault in: a chunk of synthetic records ran at about half its speed."""
    import dask
    from distributed import LocalCluster

    try:
        import bokeh  # noqa: F401 - the dashboard needs it
    except ImportError:
        dashboard = False
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=":0" if dashboard else None)


def dask_loop(mig: "Migration", source: Connector, target: Connector, plan: Plan, lease: str,
              max_batches: int | None, on_batch: "Callable[[Progress], None] | None", *,
              cluster: Any = None, workers: int | None = None) -> bool:
    """The runner's batch loop on Dask: True once every partition is read to its end, False
    after a stop or ``max_batches``. (Verification follows in the runner, as for one process.)"""
    refuse_single_process(source, target)
    rec = mig.store.get(mig.id)
    if rec.batches and not ledger.rows(mig.store, mig.id):  # begun in one process
        if plan.partitions:  # its cursor is the whole scan's: it cannot be split among partitions
            raise StateError(f"migration '{mig.id}' was begun in one process: resume it without "
                             f"--workers/--scheduler")
        ledger.register(mig.store, mig.id, [whole(plan.source_count).to_dict()], cursor=rec.cursor)
    ledger.register(mig.store, mig.id, plan.partitions or [whole(plan.source_count).to_dict()])
    client, stack = open_client(cluster, workers)
    with stack:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(f"the Dask scheduler at {client.scheduler.address} has no workers "
                              f"(none joined within {CONNECT_TIMEOUT_S:.0f} s); nothing was copied") from None
        for addr, why in sorted(client.run(probe, rec.source_uri, rec.target_uri).items()):
            if why:
                raise ConfigError(f"Dask worker {addr} cannot open the migration's stores: {why}")
        info = client.scheduler_info()
        processes = max(1, len(info.get("workers", {})))
        dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else ""
        log.info("migration %s on Dask: %d worker processes%s", mig.id, processes,
                 f", dashboard {dashboard}" if dashboard else "")
        # The panel reads the dashboard's address from here (vmkit.notebook may show it).
        mig.store.event(mig.id, "dask run", f"{processes} workers" + (f", dashboard {dashboard}" if dashboard else ""))
        task = _task(mig, plan, processes)
        for conn in (source, target):  # this process's requests out of the limits the workers share
            conn.settle_limits()
        with mig.store.lease_kept(mig.id, lease):
            finished = _Coordinator(mig, plan, lease, client, task, max_batches, on_batch).run()
            if finished and mig.options.verify:  # on the workers, while the cluster is up
                from vmkit.migration.distributed_verify import verify_on_dask

                mig.verified = verify_on_dask(mig, client, source, target, plan, task)
                mig.store.event(mig.id, "verified on the workers" if mig.verified is not None
                                else "verification left to the coordinator")
            return finished


def _task(mig: "Migration", plan: Plan, processes: int) -> ChunkTask:
    rec = mig.store.get(mig.id)
    return ChunkTask(mig.id, rec.source_uri, rec.target_uri, plan.to_json(), plan.hash,
                     mig.options.to_dict(), {}, None, ChunkSizer(mig.options.chunk_batches).batches(), processes)


def verify_distributed(mig: "Migration", cluster: Any = None, workers: int | None = None) -> Any:
    """Full verification of a migration's partitions on a Dask cluster, merged (nothing is
    stored): a vmkit.migration.verification.Verification, or None when only the one-process
    ``Migration.verify()`` can decide (the target holds records no source record maps to,
    or cannot hand records back)."""
    from vmkit.migration.distributed_verify import verify_on_dask

    plan = mig.plan
    source, target = mig._open_connectors()
    client, stack = open_client(cluster, workers)
    try:
        with stack:
            processes = max(1, len(client.scheduler_info().get("workers", {})))
            for conn in (source, target):
                conn.settle_limits()
            return verify_on_dask(mig, client, source, target, plan, _task(mig, plan, processes))
    finally:
        mig.close()


class _Coordinator:
    def __init__(self, mig: "Migration", plan: Plan, lease: str, client: Any, task: ChunkTask,
                 max_batches: int | None, on_batch: "Callable[[Progress], None] | None") -> None:
        from distributed import as_completed

        self.mig, self.plan, self.lease, self.client, self.task = mig, plan, lease, client, task
        self.max_batches, self.on_batch = max_batches, on_batch
        self.breaker = RejectionBreaker(mig.store, mig.id, mig.options)
        self.in_flight: dict[Any, tuple[ledger.PartitionRow, str | None, int]] = {}
        self.results = as_completed()
        self.started = time.monotonic()
        self.done_here = 0
        # Partitions whose next chunk waits: submitted after each commit unless paused (Pause
        # lets the chunks in flight commit, then holds with the lease and the cluster kept).
        self.held: list[tuple[ledger.PartitionRow, str | None]] = []
        self.sizer = ChunkSizer(mig.options.chunk_batches)

    def submit(self, row: ledger.PartitionRow, cursor: str | None, attempt: int = 0) -> None:
        from dataclasses import replace

        batches = self.sizer.batches()
        if self.max_batches is not None:  # stop close to max_batches, not a large chunk past it
            batches = max(1, min(batches, self.max_batches - self.done_here))
        task = replace(self.task, partition=row.spec, cursor=cursor, batches=batches)
        future = self.client.submit(run_chunk, task, pure=False, key=f"vmkit-{row.key}-{time.monotonic_ns()}")
        self.in_flight[future] = (row, cursor, attempt)
        self.results.add(future)

    def run(self) -> bool:
        from distributed import KilledWorker

        open_rows = [r for r in ledger.rows(self.mig.store, self.mig.id) if not r.scan_done]
        for row in open_rows:
            self.submit(row, row.cursor)
        stopping = False
        try:
            for future in self.results:
                row, cursor, attempt = self.in_flight.pop(future)
                try:
                    ack: ChunkAck = future.result()
                except KilledWorker as exc:
                    if attempt >= _RESUBMITS:
                        raise StateError(f"partition {row.key!r}: every worker that ran it died ({exc}); "
                                         f"`vmkit migrate resume --id {self.mig.id}` continues it") from None
                    log.warning("partition %s: its workers died; submitting it again", row.key)
                    self.submit(row, cursor, attempt + 1)
                    continue
                except Exception as exc:
                    self.mig.store.record_error(self.mig.id, None, "terminal",
                                                f"partition {row.key!r} on a Dask worker: {type(exc).__name__}: {exc}")
                    raise
                self.commit(ack)
                self.sizer.observe(ack)
                if self.mig._should_stop() or (self.max_batches is not None and self.done_here >= self.max_batches):
                    if not stopping:
                        log.info("migration %s: stopping after the chunks in flight; resume with "
                                 "`vmkit migrate resume --id %s --workers N`", self.mig.id, self.mig.id)
                    stopping = True
                if not ack.done and not stopping:
                    self.held.append((row, ack.cursor_after))
                if self.mig._paused.is_set() and not self.in_flight:  # all committed: hold here
                    self.mig._hold_while_paused(self.lease)
                    stopping = stopping or self.mig._should_stop()
                if not self.mig._paused.is_set() and not stopping:
                    for held_row, held_cursor in self.held:
                        self.submit(held_row, held_cursor)
                    self.held.clear()
        finally:
            if self.in_flight:  # an error: chunks still running change nothing committed
                self.client.cancel(list(self.in_flight))
        return all(r.scan_done for r in ledger.rows(self.mig.store, self.mig.id))

    def commit(self, ack: ChunkAck) -> None:
        store, mid = self.mig.store, self.mig.id
        commits: list[BatchCommit] = list(ack.batches)
        try:
            seqs = ledger.commit_chunk(store, mid, self.lease, ack.key, ack.cursor_before, commits)
        except ledger.StaleChunk as exc:
            log.warning("%s: acknowledgement dropped", exc)
            return
        self.done_here += len(seqs)
        for seq, b in zip(seqs, ack.batches):
            self.breaker.record(b.read, b.rejections)
            if b.validation is not None:
                store.record_validation(mid, seq, b.validation)
        if any(b.validation is not None for b in ack.batches):
            roll_back_if_sampling_fails(store, mid, self.mig.options)
        if self.on_batch is not None:
            self.on_batch(self.mig._progress(self.plan, time.monotonic() - self.started))

