"""Benchmark 3: Pinecone (local emulator, 20 ms per request) -> Qdrant, vmkit's pipelined run
against a plain sequential loop of SDK calls over the same data, in the same run.

    .venv/bin/python bench/bench_pinecone_pipeline.py [--records 10000] [--dim 256] [--namespaces 1,8]
        [--ids doc|uuid] [--target qdrant|sink] [--rounds 3]

The loop is what a one-off script does: make its clients, then for each namespace list a page
of ids, fetch them, upsert them, repeat. Its time includes making the clients, as vmkit's
includes opening its connectors. vmkit reads 1000-record batches ahead of the writer (a fetch
starts as soon as two pages are listed, the next batch is listed while this one's fetches
finish, and up to 4 namespaces are listed at once) and checkpoints every batch; its sampled
validation is on, full verification is timed apart. The same records are measured in one
namespace, where listing (100 ids a round trip, each page needing the last one's token) bounds
any reader, and spread over several. The emulator enforces the service's documented
request-per-second limits (list 200, fetch 100 per index), and vmkit paces itself under them.
With ``--ids uuid``, vmkit lists a namespace of at least 5,000 records by the first character
of its ids, several at once; ``doc-0000001`` ids share too long a prefix to split at 10,000
(the probes would cost more than they save) and are listed in sequence.

Each round times the loop, then vmkit twice: as it comes, and with ``tune_interpreter=False``,
which leaves CPython's GIL switch interval (5 ms) and garbage collection as they are (see
``vmkit/interpreter.py``); each timed part starts after a full collection, so none pays for the
garbage of the one before.
This machine's speed drifts by tens of percent over minutes, so one round's ratio says little:
the figures are the median of the rounds' and their range (``--rounds``, default 3).

``--target sink`` takes the writes out of the comparison: vmkit writes to its fingerprint sink
(no sampled validation: the sink cannot be read back) and the loop only reads. One namespace
that is listed in sequence then shows the ceiling: the loop makes two round trips a page (list,
fetch) and vmkit one, so no pipelined reader of it gets past 2x of the read alone.

It also times what planning spends on its profile sample of 2,000 records: vmkit's (queries
from random points, then a fetch of the ids found) against the generic reservoir over a read of
the whole index, on the same index.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from emulators.pinecone_emulator import EMU_KEY  # noqa: E402


def sequential_loop(index_host: str, n: int, dim: int, target: str) -> float:
    """The loop's seconds, its clients' set-up included, as vmkit's run includes its own."""
    from pinecone import Pinecone
    from qdrant_client import QdrantClient, models

    gc.collect()
    t = time.perf_counter()
    pc = Pinecone(api_key=EMU_KEY)
    idx = pc.index(host=index_host)
    q = QdrantClient(":memory:")
    q.create_collection(f"loop{n}", vectors_config=models.VectorParams(size=dim, distance="Dot"))
    write = target == "qdrant"  # with the sink target, the loop only reads
    copied = 0
    for ns in sorted(idx.describe_index_stats().namespaces):
        token = None
        while True:
            page = idx.list_paginated(namespace=ns, limit=100, pagination_token=token)
            ids = [v.id for v in page.vectors]
            if ids:
                got = idx.fetch(ids=ids, namespace=ns).vectors
                if write:
                    q.upsert(f"loop{n}", points=[models.PointStruct(
                        id=i, vector=list(got[rid].values), payload={**(got[rid].metadata or {}), "pid": rid})
                        for i, rid in enumerate(ids, start=copied)], wait=True)
                copied += len(ids)
            token = page.pagination.next if page.pagination else None
            if not token:
                break
    assert copied == n, copied
    return time.perf_counter() - t


SERVER = """
import sys, numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator
import random, uuid
n, dim, latency, spaces = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rid = (lambda i: str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4))) if sys.argv[6] == "uuid" \
    else (lambda i: f"doc-{i:07d}")
emu = PineconeEmulator(api_key=EMU_KEY, seed=1)
emu.create_index("src", dim, "dotproduct")
vecs = np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32)
for k in range(spaces):  # the same records, dealt over the namespaces ("" is the default one)
    emu.seed("src", [(rid(i), vecs[i], {"i": i, "tag": f"t{i % 10}"}, None)
                     for i in range(k, n, spaces)], namespace="" if k == 0 else f"tenant-{k}")
emu.faults.latency_ms = latency
print(emu.url, emu.host("src"), flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
"""


def measure(n: int, dim: int, latency_ms: float, spaces: int, ids: str, target: str, rounds: int) -> None:
    # The service is another process, as a real one is: it must not share our GIL.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT), str(n), str(dim), str(latency_ms), str(spaces), ids],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url, host = server.stdout.readline().split()
        os.environ["PINECONE_CONTROLLER_HOST"] = url
        os.environ["PINECONE_API_KEY"] = EMU_KEY
        loop, tuned, untuned = [], [], []
        first: tuple[Any, bool, float] | None = None  # the first round's status and verification
        for r in range(rounds):  # in turn, so a slower minute of this shared machine hits all three
            loop.append(sequential_loop(host, n, dim, target))
            vm_s, status, ok, verify_s = vmkit_run(spaces, target, tune=True, name=f"r{r}", verify=r == 0)
            tuned.append(vm_s)
            first = first or (status, ok, verify_s)
            untuned.append(vmkit_run(spaces, target, tune=False, name=f"r{r}", verify=False)[0])
        sample_s, full_s = profile_sample_seconds(2000)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    assert first is not None
    status, ok, verify_s = first
    print(f"\nPinecone emulator ({latency_ms:.0f} ms/request, rate limits, own process) -> {target}, {n} x {dim} "
          f"in {spaces} namespace{'s' if spaces > 1 else ''}, {ids} ids; {rounds} round{'s' if rounds > 1 else ''}, "
          "each timing all three in turn: seconds are medians, speed-ups the median of each round's and their range")
    print(f"{'':44}{'seconds':>9}{'records/s':>12}{'speed-up':>10}  rounds")
    loop_name = "sequential SDK loop (list 100, fetch" + (", upsert)" if target == "qdrant" else ")")
    vm_name = "vmkit pipelined (checkpoints" + (" + sampling)" if target == "qdrant" else ")")
    print(f"{loop_name:44}{median(loop):9.2f}{n / median(loop):12.0f}{1:10.2f}")
    for name, times in ((vm_name, tuned), ("  same, interpreter untouched", untuned)):
        ratios = [a / b for a, b in zip(loop, times)]
        print(f"{name:44}{median(times):9.2f}{n / median(times):12.0f}{median(ratios):10.2f}  "
              f"{min(ratios):.2f}-{max(ratios):.2f}")
    print(f"vmkit: {status.batches} checkpoints, {status.validation['batches']} batches validated; "
          f"full verification {'passed' if ok else 'FAILED'} in {verify_s:.2f} s (first round, not in the ratio)")
    print(f"planning's profile sample of 2000 records: {sample_s:.2f} s with queries, {full_s:.2f} s "
          f"reading the whole index ({full_s / sample_s:.1f}x)")


def vmkit_run(spaces: int, target: str, tune: bool, name: str, verify: bool) -> tuple[float, Any, bool, float]:
    """vmkit's copy (seconds, status) and, if asked, its full verification (passed, seconds),
    timed apart; ``tune=False`` leaves the GIL switch interval and garbage collection as they are."""
    from vmkit import Migration

    name = f"vm{spaces}{name}{'' if tune else 'u'}"
    with tempfile.TemporaryDirectory() as tmp:
        sink = target == "sink"  # keeps fingerprints only: nothing to read back for sampling
        m = Migration.create("pinecone://src", f"sink://{name}" if sink else f"qdrant:///:memory:?collection={name}",
                             migration_id="b", state=Path(tmp) / "s.db", verify=False, tune_interpreter=tune,
                             **({"sample_rate": 0.0} if sink else {}))
        gc.collect()  # each timed part starts without the garbage of the one before
        t = time.perf_counter()
        status = m.run()
        vm_s = time.perf_counter() - t
        if not verify:
            return vm_s, status, False, 0.0
        t = time.perf_counter()
        ok = m.verify().passed
        return vm_s, status, ok, time.perf_counter() - t


def profile_sample_seconds(n: int) -> tuple[float, float]:
    """What planning spends on its sample: vmkit's (queries, then a fetch of the ids found)
    against the generic one (read every record, keep a reservoir), on the same index."""
    from vmkit.connectors import connect
    from vmkit.connectors.base import Connector

    with connect("pinecone://src") as conn:
        t = time.perf_counter()
        conn.sample(n)
        sample_s = time.perf_counter() - t
        t = time.perf_counter()
        Connector.sample(conn, n)
        return sample_s, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--namespaces", default="1,8", help="comma-separated namespace counts to measure")
    ap.add_argument("--ids", choices=("doc", "uuid"), default="doc", help="doc-0000001 or random UUIDs")
    ap.add_argument("--target", choices=("qdrant", "sink"), default="qdrant",
                    help="Qdrant embedded in this process, or vmkit's fingerprint sink (the loop then only reads)")
    ap.add_argument("--rounds", type=int, default=3, help="times to run the loop and vmkit, in turn")
    args = ap.parse_args()
    for spaces in (int(x) for x in args.namespaces.split(",")):
        measure(args.records, args.dim, args.latency_ms, spaces, args.ids, args.target, max(1, args.rounds))


if __name__ == "__main__":
    main()
