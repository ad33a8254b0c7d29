"""Benchmark 2: Qdrant local -> local, vmkit against qdrant_client.migrate on the same data.

    .venv/bin/python bench/bench_qdrant_local.py [--records 20000] [--dim 768]

Each side runs in its own process (the embedded engine allows one client per directory) and
times only its own work, from opening the source (the embedded engine loads the whole
collection into memory then: vmkit's ``run()`` opens its connectors, so the peer's clock starts
before it builds its clients) to the last acknowledged write. vmkit runs with checkpoints and sampled validation on; its full
verification (which the peer does not do: it compares counts) is timed separately.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from qdrant_source import qdrant_source

PEER = """
import json, sys, time
from qdrant_client import QdrantClient
from qdrant_client.migrate import migrate
t = time.perf_counter()  # opening the clients counts: it loads the collection, as vmkit's run does
src, dst = QdrantClient(path=sys.argv[1]), QdrantClient(path=sys.argv[2])
migrate(src, dst, collection_names=["docs"], batch_size=int(sys.argv[3]), recreate_on_collision=True)
print(json.dumps({"copy_s": time.perf_counter() - t}))
"""

VMKIT = """
import json, sys, time
from vmkit import Migration
m = Migration.create(f"qdrant://{sys.argv[1]}?collection=docs", f"qdrant://{sys.argv[2]}?collection=docs",
                     migration_id="bench", state=sys.argv[4], batch_size=int(sys.argv[3]), verify=False)
t = time.perf_counter()
st = m.run()
copy = time.perf_counter() - t
t = time.perf_counter()
ok = m.verify().passed
print(json.dumps({"copy_s": copy, "verify_s": time.perf_counter() - t, "verified": ok,
                  "validated_batches": st.validation["batches"], "batches": st.batches}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vmkit-bench-qdrant")
    args = ap.parse_args()
    src = Path(qdrant_source(args.workdir, args.records, args.dim))
    peer_dst, vm_dst = args.workdir / "dst-peer", args.workdir / "dst-vmkit"
    for d in (peer_dst, vm_dst):
        shutil.rmtree(d, ignore_errors=True)
    state = args.workdir / "state.db"
    state.unlink(missing_ok=True)
    peer = run(PEER, str(src), str(peer_dst), str(args.batch_size))
    vm = run(VMKIT, str(src), str(vm_dst), str(args.batch_size), str(state))
    n = args.records
    print(f"\nQdrant local -> local, {n} x {args.dim}, batch {args.batch_size}")
    print(f"{'':38}{'seconds':>9}{'records/s':>12}{'vs peer':>9}")
    print(f"{'qdrant_client.migrate (counts only)':38}{peer['copy_s']:9.2f}{n / peer['copy_s']:12.0f}{1:9.2f}")
    print(f"{'vmkit copy (checkpoints + sampling)':38}{vm['copy_s']:9.2f}{n / vm['copy_s']:12.0f}"
          f"{vm['copy_s'] / peer['copy_s']:9.2f}")
    total = vm["copy_s"] + vm["verify_s"]
    print(f"{'vmkit copy + full verification':38}{total:9.2f}{n / total:12.0f}{total / peer['copy_s']:9.2f}")
    print(f"(vmkit: {vm['batches']} checkpoints, {vm['validated_batches']} batches validated, "
          f"verification {'passed' if vm['verified'] else 'FAILED'})")


if __name__ == "__main__":
    main()
