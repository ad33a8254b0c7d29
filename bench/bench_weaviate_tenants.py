"""Reading a multi-tenant Weaviate collection of many small tenants: vmkit's migration into its
fingerprint sink against a sequential loop of SDK calls that reads the same tenants, in the
same run.

    .venv/bin/python bench/bench_weaviate_tenants.py [--tenants 300] [--per-tenant 30] [--dim 64]
        [--latency-ms 10]

The emulator serves in this process, with ``--latency-ms`` added to every call. The loop is what
a one-off script does: list the tenants, then page through each with the ``after`` cursor.
vmkit reads four tenants at once, each a page ahead, checkpoints every batch, and asks for the
tenant list once (and once more at the end, for tenants added meanwhile).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402

from vmkit import Migration  # noqa: E402
from vmkit.connectors import connect  # noqa: E402
from vmkit.connectors.base import TargetSpec  # noqa: E402
from vmkit.core.records import RecordBatch  # noqa: E402


def sequential_loop(emu: WeaviateEmulator) -> tuple[float, int]:
    t, read = time.perf_counter(), 0
    with emu.client() as client:
        coll = client.collections.get("Docs")
        for tenant in sorted(coll.tenants.get()):
            after = None
            while True:
                page = coll.with_tenant(tenant).query.fetch_objects(limit=1000, after=after, include_vector=True)
                read += len(page.objects)
                if len(page.objects) < 1000:
                    break
                after = page.objects[-1].uuid
    return time.perf_counter() - t, read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=300)
    ap.add_argument("--per-tenant", type=int, default=30)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=10)
    args = ap.parse_args()
    n = args.tenants * args.per_tenant
    with WeaviateEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        conn = connect(emu.uri("Docs", multi_tenancy="true"))
        conn.create(TargetSpec("Docs", args.dim, "cosine"))
        rng = np.random.default_rng(0)
        for t in range(args.tenants):
            conn.upsert(RecordBatch([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(args.per_tenant)],
                                    rng.standard_normal((args.per_tenant, args.dim)).astype(np.float32),
                                    [{"i": i} for i in range(args.per_tenant)], namespace=f"tenant{t:05d}"))
        conn.close()
        emu.faults.latency_s = args.latency_ms / 1000
        loop_s, loop_read = sequential_loop(emu)
        m = Migration.create(emu.uri("Docs"), "sink://tenants", migration_id="b", state=Path(tmp) / "s.db",
                             verify=False, sample_rate=0.0)
        t = time.perf_counter()
        status = m.run()
        vm_s = time.perf_counter() - t
    assert loop_read == status.records_read == n, (loop_read, status.records_read)
    print(f"Weaviate emulator ({args.latency_ms:.0f} ms/call) -> reads of {n} x {args.dim} "
          f"in {args.tenants} tenants of {args.per_tenant}")
    print(f"{'':44}{'seconds':>9}{'records/s':>12}{'speed-up':>10}")
    print(f"{'sequential SDK loop (tenants, pages)':44}{loop_s:9.2f}{n / loop_s:12.0f}{1:10.2f}")
    print(f"{'vmkit -> sink (checkpoints)':44}{vm_s:9.2f}{n / vm_s:12.0f}{loop_s / vm_s:10.2f}")


if __name__ == "__main__":
    main()
