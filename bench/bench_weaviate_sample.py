"""What planning spends on its profile sample of a Weaviate collection: vmkit's (short runs
after random uuids) against the generic reservoir over a read of the whole collection, on the
same collection in the same run.

    .venv/bin/python bench/bench_weaviate_sample.py [--records 20000,100000] [--tenants 1,100] [--dim 256]
        [--latency-ms 5]

The emulator serves in this process, with ``--latency-ms`` added to every gRPC call. With more
than one tenant, the records are dealt over a multi-tenant collection's tenants; vmkit samples
eight tenants at once, and eight seeks at once.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402

from vmkit.connectors import connect  # noqa: E402
from vmkit.connectors.base import Connector, TargetSpec  # noqa: E402
from vmkit.core.records import RecordBatch  # noqa: E402

SAMPLE = 2000


def measure(emu: WeaviateEmulator, n: int, tenants: int, dim: int, latency_ms: float) -> None:
    emu.reset()
    conn = connect(emu.uri(f"Bench{n}", **({"multi_tenancy": "true"} if tenants > 1 else {})))
    conn.create(TargetSpec(f"Bench{n}", dim, "cosine"))
    rng = np.random.default_rng(n)
    per_tenant = -(-n // tenants)
    for start in range(0, n, 1000):
        k = min(1000, n - start, per_tenant - start % per_tenant)
        ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(k)]
        conn.upsert(RecordBatch(ids, rng.standard_normal((k, dim)).astype(np.float32),
                                [{"i": start + j, "tag": f"t{j % 10}"} for j in range(k)],
                                namespace=f"tenant{start // per_tenant:04d}" if tenants > 1 else ""))
    emu.faults.latency_s = latency_ms / 1000
    t = time.perf_counter()
    got = sum(map(len, conn.sample(SAMPLE)))
    seeks_s = time.perf_counter() - t
    t = time.perf_counter()
    Connector.sample(conn, SAMPLE)
    full_s = time.perf_counter() - t
    emu.faults.latency_s = 0
    conn.close()
    where = f"{n} x {dim}" + (f" in {tenants} tenants" if tenants > 1 else "")
    print(f"{where:>28}{seeks_s:12.2f}{full_s:14.2f}{full_s / seeks_s:10.1f}x   ({got} records)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", default="20000,100000", help="comma-separated collection sizes")
    ap.add_argument("--tenants", default="1,100", help="comma-separated tenant counts (1: no multi-tenancy)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--latency-ms", type=float, default=5)
    args = ap.parse_args()
    print(f"Weaviate emulator ({args.latency_ms:.0f} ms/call): profile sample of {SAMPLE} records, seconds")
    print(f"{'collection':>28}{'vmkit seeks':>12}{'whole read':>14}{'ratio':>11}")
    with WeaviateEmulator() as emu:
        for tenants in (int(x) for x in args.tenants.split(",")):
            for n in (int(x) for x in args.records.split(",")):
                measure(emu, n, tenants, args.dim, args.latency_ms)


if __name__ == "__main__":
    main()
