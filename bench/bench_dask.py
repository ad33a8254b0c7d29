"""Benchmark 11: one migration on Dask, 2 worker processes against 1, in the same run.

    .venv/bin/python bench/bench_dask.py [--records 2000000] [--dim 768] [--partitions 8]

synthetic N x 768 -> fingerprint sink in ``--partitions`` partitions, a checkpoint (one SQLite
transaction in the coordinator) per acknowledged chunk. Prints records/s with a LocalCluster of
1 and of 2 worker processes and their ratio, in ``--repeats`` pairs of runs that alternate
(both clusters stay up; the median of the pairs' ratios is the figure), the same for the bare
work in 1 and 2 plain processes (the machine's own scaling); the coordinator's RSS after a run of N/4 and of N
records (the coordinator holds no records: it should be flat); and the coordinator's commit
rate alone, in acknowledgements (and batches) a second, on a store of its own.

The sink keeps each worker's digests inside that worker, so the coordinator cannot verify it:
runs are made with ``verify=False`` and ``sample_rate=0`` (as bench_synthetic_scale's copy
figure). Full verification on Dask is what the tests in tests/distributed prove.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit.connectors.partitions import Partition  # noqa: E402


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 1e6)


def make_sink(name: str, dim: int) -> None:
    """On a worker: the sink it writes into (a sink lives inside one process)."""
    from vmkit import TargetSpec, connect

    connect(f"sink://{name}").create(TargetSpec(name, dim, "dot"))


def drop_sink(name: str) -> None:
    """On a worker: the sink's digests go once its run is timed (runs alternate, memory stays flat)."""
    from vmkit import connect

    connect(f"sink://{name}").drop()


CPU: dict[str, float] = {}  # migration id -> the coordinator's CPU seconds during its run


def cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(client: Any, n: int, dim: int, parts: int, state: Path, mid: str, chunk: int) -> float:
    from vmkit import Migration

    client.run(make_sink, mid, dim)
    m = Migration.create(f"synthetic://bench?n={n}&dim={dim}&seed=3", f"sink://{mid}", migration_id=mid,
                         state=state, batch_size=1000, sample_rate=0.0, verify=False, partitions=parts,
                         chunk_batches=chunk)
    t, c = time.perf_counter(), cpu_s()
    status = m.run(executor="dask", cluster=client)
    seconds = time.perf_counter() - t
    CPU[mid] = cpu_s() - c
    assert status.state == "completed" and status.records_read == n, str(status)
    m.store.close()
    client.run(drop_sink, mid)
    return seconds


def bare_partition(n: int, dim: int, parts: int, index: int) -> int:
    """One partition's work without vmkit's migration around it: scan, map, digest, checksum."""
    from vmkit import connect, plan
    from vmkit.core.fingerprint import batch_checksum, batch_digests
    from vmkit.planning.transform import map_batch

    src = connect(f"synthetic://bench?n={n}&dim={dim}&seed=3")
    the_plan = plan(src, connect("memory://bare"), sample=0, partitions=parts)
    part = Partition.from_dict(the_plan.partitions[index])
    cursor, done = None, 0
    while True:
        batch, cursor = src.scan_partition(part, cursor, 1000)
        mapped = map_batch(batch, the_plan).batch
        done += sum(1 for _ in batch_digests(mapped))
        batch_checksum(mapped)
        if cursor is None:
            return done


def bare_pool(processes: int, dim: int) -> Any:
    """A pool of plain processes, started and warmed (imports, JIT)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(bare_partition, [1000] * processes, [dim] * processes, [2] * processes, [0] * processes))
    return pool


def bare(pool: Any, n: int, dim: int, parts: int) -> float:
    """Seconds for every partition's bare work in ``pool``'s plain processes: the machine's own
    scaling for this work, the ceiling of the Dask ratio."""
    t = time.perf_counter()
    assert sum(pool.map(bare_partition, [n] * parts, [dim] * parts, [parts] * parts, range(parts))) == n
    return time.perf_counter() - t


def commit_rate(acks: int = 2000, per_ack: int = 4) -> float:
    """Acknowledgements a second the coordinator commits (one transaction each, per_ack
    batch rows, fsync as in a run)."""
    from vmkit.state import partitions as ledger
    from vmkit.state.store import BatchCommit, StateStore

    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "c.db")
        store.create("c", "synthetic://x", "sink://x", {})
        store.transition("c", "in_progress")
        lease = store.acquire_lease("c")
        ledger.register(store, "c", [{"key": "p", "namespace": "", "lower": None, "upper": None, "estimated": 0}])
        cursor = None
        t = time.perf_counter()
        for i in range(acks):
            commits = [BatchCommit(cursor, str(i * per_ack + j + 1), 1000, 1000, [], "0" * 16, 0.0)
                       for j in range(per_ack)]
            ledger.commit_chunk(store, "c", lease, "p", cursor, commits)
            cursor = commits[-1].cursor_after
        return acks / (time.perf_counter() - t)


def main() -> None:
    from distributed import Client

    from vmkit.migration.distributed import local_cluster

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--chunk-batches", type=int, default=0, help="0: as the product sizes them (about 1 s each)")
    ap.add_argument("--repeats", type=int, default=3, help="pairs of runs (1 worker, then 2)")
    args = ap.parse_args()
    n, dim, parts, chunk = args.records, args.dim, args.partitions, args.chunk_batches
    load_before = os.getloadavg()[0]
    # This machine's speed drifts by a third from minute to minute (another tenant's load), so
    # one run of each side compares two different machines. Runs alternate (1 worker, 2, 1, 2,
    # ...), each ratio taken from a pair run back to back, the median is the figure. Only the
    # cluster (or pool) being timed is up: an idle one's heartbeats would slow the other.
    pairs: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    rss: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        def timed(workers: int, mid: str, quarter: bool = False) -> float:
            with local_cluster(workers, dashboard=False) as cluster, Client(cluster) as client:
                run(client, 20_000, dim, parts, Path(tmp) / f"warm-{mid}.db", f"warm-{mid}", chunk)
                if quarter:
                    run(client, n // 4, dim, parts, Path(tmp) / "quarter.db", "quarter", chunk)
                    rss[n // 4] = rss_mb()
                seconds = run(client, n, dim, parts, Path(tmp) / f"{mid}.db", mid, chunk)
                if quarter:
                    rss[n] = rss_mb()
                return seconds

        for r in range(args.repeats):
            pairs.append((timed(1, f"a{r}"), timed(2, f"b{r}", quarter=r == 0)))
    rate = commit_rate()
    for _ in range(args.repeats):
        pair = []
        for processes in (1, 2):
            with bare_pool(processes, dim) as pool:
                pair.append(bare(pool, n, dim, parts))
        plain.append((pair[0], pair[1]))
    print(f"synthetic -> sink on Dask, {n} x {dim}, {parts} partitions, batch 1000, "
          f"{f'{chunk} batches a chunk' if chunk else 'chunks of about 1 s'}, checkpoint per chunk; {args.repeats} pairs of runs, alternating")
    print(f"{'':22}{'1 worker s':>11}{'2 workers s':>12}{'ratio':>7}{'records/s (2)':>15}{'coordinator CPU s (1, 2)':>26}")
    for r, (s1, s2) in enumerate(pairs):
        cpu = f"{CPU[f'a{r}']:.2f}, {CPU[f'b{r}']:.2f}"
        print(f"{f'dask pair {r + 1}':22}{s1:11.2f}{s2:12.2f}{s1 / s2:7.2f}{n / s2:15,.0f}{cpu:>26}")
    for r, (s1, s2) in enumerate(plain):
        print(f"{f'plain processes {r + 1}':22}{s1:11.2f}{s2:12.2f}{s1 / s2:7.2f}{n / s2:15,.0f}")
    dask_ratio = statistics.median(a / b for a, b in pairs)
    plain_ratio = statistics.median(a / b for a, b in plain)
    print(f"median ratio 2 workers / 1 on Dask: {dask_ratio:.2f}x; in plain processes (this machine's own "
          f"scaling of the same work): {plain_ratio:.2f}x")
    print("coordinator RSS after a run: " + ", ".join(f"{k} records {v:.0f} MB" for k, v in rss.items()))
    print(f"coordinator commit rate: {rate:.0f} acknowledgements/s ({rate * 4:.0f} batches/s at 4 a chunk)")
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
