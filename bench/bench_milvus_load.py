"""Qdrant local -> Milvus Lite: vmkit's whole migration against a hand-written pymilvus loop.

    python bench/bench_milvus_load.py [--records 100000] [--dim 768]

The same Qdrant source (made once in a temp directory, ids half ints half UUIDs, rich payloads)
goes into a fresh Milvus Lite .db twice, each side in its own process (Milvus Lite and the
embedded Qdrant allow one process per directory):

- hand: scroll the whole source into numpy + a payload list first (timed apart), then
  ``MilvusClient.insert`` 1,000 rows a call into a collection shaped as vmkit makes it
  (VARCHAR key, FLOAT_VECTOR with AUTOINDEX, dynamic field). Reported as insert only and as
  read + insert; the ratio is taken against read + insert, since vmkit's clock includes its
  reads too (against insert only it is also printed).
- vmkit: ``Migration.create(...).run()`` with default options (checkpoints per batch, sampled
  validation on), verification timed separately.
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

HAND = """
import json, sys, time
import numpy as np
from qdrant_client import QdrantClient
from pymilvus import DataType, MilvusClient
src, dst = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
q = QdrantClient(path=src)
ids, vecs, metas, offset = [], [], [], None
while True:
    points, offset = q.scroll("docs", limit=1000, offset=offset, with_payload=True, with_vectors=True)
    for p in points:
        ids.append(str(p.id)); vecs.append(p.vector); metas.append(p.payload or {})
    if offset is None:
        break
vectors = np.asarray(vecs, dtype=np.float32)
read_s = time.perf_counter() - t0
t1 = time.perf_counter()
c = MilvusClient(dst)
s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=65535)
s.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
ip = c.prepare_index_params()
ip.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
c.create_collection("docs", schema=s, index_params=ip)
for k in range(0, len(ids), 1000):
    c.insert("docs", [{**metas[i], "id": ids[i], "vector": vectors[i]} for i in range(k, min(k + 1000, len(ids)))])
insert_s = time.perf_counter() - t1
n = c.query("docs", filter="", output_fields=["count(*)"])[0]["count(*)"]
print(json.dumps({"read_s": read_s, "insert_s": insert_s, "count": n}))
"""

VMKIT = """
import json, sys, time
from vmkit import Migration
m = Migration.create(f"qdrant://{sys.argv[1]}?collection=docs", f"milvus://{sys.argv[2]}?collection=docs",
                     migration_id="bench", state=sys.argv[3], verify=False)
t = time.perf_counter()
st = m.run()
copy = time.perf_counter() - t
t = time.perf_counter()
ok = m.verify().passed
print(json.dumps({"copy_s": copy, "verify_s": time.perf_counter() - t, "verified": ok, "state": st.state,
                  "validated_batches": st.validation["batches"], "batches": st.batches}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    shm = Path("/dev/shm")
    default = (shm if shm.is_dir() else Path(tempfile.gettempdir())) / "vmkit-bench-milvus"
    ap.add_argument("--workdir", type=Path, default=default)
    args = ap.parse_args()
    src = Path(qdrant_source(args.workdir, args.records, args.dim))
    hand_db, vm_db = args.workdir / "hand.db", args.workdir / "vmkit.db"
    for d in (hand_db, vm_db):
        shutil.rmtree(d, ignore_errors=True)
    state = args.workdir / "state.db"
    state.unlink(missing_ok=True)
    hand = run(HAND, str(src), str(hand_db))
    vm = run(VMKIT, str(src), str(vm_db), str(state))
    n = args.records
    both = hand["read_s"] + hand["insert_s"]
    print(f"\nQdrant local -> Milvus Lite, {n} x {args.dim}")
    print(f"{'':44}{'seconds':>9}{'records/s':>12}{'ratio':>8}")
    print(f"{'hand: Qdrant scroll into numpy':44}{hand['read_s']:9.2f}{n / hand['read_s']:12.0f}")
    print(f"{'hand: pymilvus insert, 1,000 a call':44}{hand['insert_s']:9.2f}{n / hand['insert_s']:12.0f}"
          f"{hand['insert_s'] / vm['copy_s']:8.2f}")
    print(f"{'hand: read + insert (baseline)':44}{both:9.2f}{n / both:12.0f}{1:8.2f}")
    print(f"{'vmkit migration (checkpoints + sampling)':44}{vm['copy_s']:9.2f}{n / vm['copy_s']:12.0f}"
          f"{both / vm['copy_s']:8.2f}")
    total = vm["copy_s"] + vm["verify_s"]
    print(f"{'vmkit + full verification':44}{total:9.2f}{n / total:12.0f}{both / total:8.2f}")
    print(f"(ratio = vmkit records/s / baseline records/s; vmkit {vm['state']}, {vm['batches']} checkpoints, "
          f"{vm['validated_batches']} batches validated, verification {'passed' if vm['verified'] else 'FAILED'}; "
          f"hand count {hand['count']})")


if __name__ == "__main__":
    main()
