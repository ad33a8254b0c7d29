"""Benchmark 11: one migration on Dask, 2 worker processes against 1, in the same run.

    .venv/bin/python bench/bench_dask.py [--records 2000000] [--dim 768] [--partitions 8]

synthetic N x 768 -> fingerprint sink in ``--partitions`` partitions, a checkpoint (one SQLite
transaction in the coordinator) per acknowledged chunk. Prints records/s with a LocalCluster of
1 and of 2 worker processes and their ratio; the coordinator's RSS after a run of N/4 and of N
records (the coordinator holds no records: it should be flat); and the coordinator's commit
rate alone, in acknowledgements (and batches) a second, on a store of its own.

The sink keeps each worker's digests inside that worker, so the coordinator cannot verify it:
runs are made with ``verify=False`` and ``sample_rate=0`` (as bench_synthetic_scale's copy
figure). Full verification on Dask is what the tests in tests/distributed prove.
"""

from __future__ import annotations

import argparse
import os
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


def bare(n: int, dim: int, parts: int, processes: int) -> float:
    """Seconds for every partition's bare work in ``processes`` plain processes: the machine's
    own scaling for this work, the ceiling of the Dask ratio."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(bare_partition, [1000] * processes, [dim] * processes, [2] * processes, [0] * processes))
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
    ap.add_argument("--chunk-batches", type=int, default=32)
    args = ap.parse_args()
    n, dim, parts, chunk = args.records, args.dim, args.partitions, args.chunk_batches
    load_before = os.getloadavg()[0]
    seconds: dict[int, float] = {}
    rss: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            with local_cluster(workers, dashboard=False) as cluster, Client(cluster) as client:
                run(client, 20_000, dim, parts, Path(tmp) / f"warm{workers}.db", f"warm{workers}", chunk)
                if workers == 2:
                    run(client, n // 4, dim, parts, Path(tmp) / "quarter.db", "quarter", chunk)
                    rss[n // 4] = rss_mb()
                seconds[workers] = run(client, n, dim, parts, Path(tmp) / f"w{workers}.db", f"w{workers}", chunk)
                if workers == 2:
                    rss[n] = rss_mb()
    rate = commit_rate()
    plain = {p: bare(n, dim, parts, p) for p in (1, 2)}
    print(f"synthetic -> sink on Dask, {n} x {dim}, {parts} partitions, batch 1000, "
          f"{chunk} batches a chunk, checkpoint per chunk")
    print(f"{'':28}{'seconds':>9}{'records/s':>12}{'coordinator CPU s':>19}")
    for workers, s in seconds.items():
        print(f"{f'{workers} worker process(es)':28}{s:9.2f}{n / s:12.0f}{CPU[f'w{workers}']:19.2f}")
    print(f"ratio 2 workers / 1: {seconds[1] / seconds[2]:.2f}x")
    for p, s in plain.items():
        print(f"{f'baseline: {p} plain process(es)':28}{s:9.2f}{n / s:12.0f}")
    print(f"baseline ratio 2 / 1 (this machine's own scaling of the same work): {plain[1] / plain[2]:.2f}x")
    print("coordinator RSS after a run: " + ", ".join(f"{k} records {v:.0f} MB" for k, v in rss.items()))
    print(f"coordinator commit rate: {rate:.0f} acknowledgements/s ({rate * 4:.0f} batches/s at 4 a chunk)")
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
