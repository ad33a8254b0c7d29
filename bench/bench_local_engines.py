"""Benchmark: synthetic -> Chroma and synthetic -> LanceDB, vmkit against each engine's own bulk path.

    .venv/bin/python bench/bench_local_engines.py [--records 50000] [--dim 768] [--rounds 2] [--engines chroma,lancedb]

Both sides read the same ``synthetic://`` records (generated on demand: the read costs the same)
and write into a fresh directory of their own, each side in its own process, timed from the first
read to the last acknowledged write:

- hand, Chroma: ``PersistentClient`` + ``create_collection(embedding_function=None)``, then
  ``collection.add`` of 5,000 records at a time (ids, float32 embeddings, metadatas).
- hand, LanceDB: ``create_table`` from the first 10,000 records as an Arrow table, then
  ``table.add`` of 10,000 at a time, then ``optimize()`` (vmkit compacts too).
- vmkit: ``Migration.run()`` with checkpoints and sampled validation (10 % of batches read back),
  batches of 5,000 (Chroma) or 10,000 (LanceDB); its writes are idempotent upserts (Chroma
  ``upsert``, LanceDB ``merge_insert``), the hand path's plain appends. Full verification timed apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HAND = {"chroma": """
import json, sys, time
import chromadb
from chromadb.config import Settings
from vmkit.connectors import connect
src = connect(sys.argv[1])
t = time.perf_counter()
col = chromadb.PersistentClient(sys.argv[2], settings=Settings(anonymized_telemetry=False)).create_collection(
    "bench", embedding_function=None, configuration={"hnsw": {"space": "ip"}})
cursor, n = None, 0
while True:
    b, cursor = src.scan(cursor, 5000)
    col.add(ids=[str(i) for i in b.ids], embeddings=b.vectors, metadatas=b.metadata)
    n += len(b)
    if cursor is None:
        break
print(json.dumps({"copy_s": time.perf_counter() - t, "rows": n}))
""", "lancedb": """
import json, sys, time
import lancedb, pyarrow as pa
from vmkit.connectors import connect
src = connect(sys.argv[1])
t = time.perf_counter()
db = lancedb.connect(sys.argv[2])
def arrow(b):
    return pa.table({"id": [str(i) for i in b.ids],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(b.vectors.reshape(-1)), b.dimension),
                     "i": [m["i"] for m in b.metadata], "group": [m["group"] for m in b.metadata]})
cursor, n, table = None, 0, None
while True:
    b, cursor = src.scan(cursor, 10000)
    if table is None:
        table = db.create_table("bench", data=arrow(b))
    else:
        table.add(arrow(b))
    n += len(b)
    if cursor is None:
        break
table.optimize()
print(json.dumps({"copy_s": time.perf_counter() - t, "rows": n}))
"""}

VMKIT = """
import json, sys, time
from vmkit import Migration
m = Migration.create(sys.argv[1], sys.argv[2], migration_id="bench", state=sys.argv[3],
                     batch_size=int(sys.argv[4]), verify=False)
t = time.perf_counter()
st = m.run()
copy = time.perf_counter() - t
t = time.perf_counter()
ok = m.verify().passed
print(json.dumps({"copy_s": copy, "verify_s": time.perf_counter() - t, "verified": ok,
                  "validated_batches": st.validation["batches"], "batches": st.batches,
                  "written": st.records_written}))
"""

TARGET = {"chroma": ("chroma://{d}/db?collection=bench", 5000), "lancedb": ("lancedb://{d}/db?table=bench", 10000)}


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=2, help="alternating which side runs first")
    ap.add_argument("--engines", default="chroma,lancedb")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vmkit-bench-local")
    args = ap.parse_args()
    n = args.records
    source = f"synthetic://bench?n={n}&dim={args.dim}&seed=1&metric=dot"
    for engine in args.engines.split(","):
        uri, batch = TARGET[engine]
        for r in range(args.rounds):  # odd rounds run the hand path first: the machine drifts
            got = {}
            for side in (["hand", "vmkit"] if r % 2 == 0 else ["vmkit", "hand"]):
                d = args.workdir / f"{engine}-{side}"
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                if side == "hand":
                    got[side] = run(HAND[engine], source, str(d / "db"))
                else:
                    got[side] = run(VMKIT, source, uri.format(d=d), str(d / "state.db"), str(batch))
                shutil.rmtree(d, ignore_errors=True)
            hand, vm = got["hand"], got["vmkit"]
            assert hand["rows"] == n and vm["written"] == n and vm["verified"], (hand, vm)
            print(f"{engine} round {r + 1} ({'hand' if r % 2 == 0 else 'vmkit'} first), {n} x {args.dim}"
                  f"{'seconds':>14}{'records/s':>12}{'x hand':>8}")
            rows = [("hand: engine's own bulk path", hand["copy_s"]),
                    ("vmkit: checkpoints + sampled validation", vm["copy_s"]),
                    ("vmkit + full verification", vm["copy_s"] + vm["verify_s"])]
            for label, s in rows:
                print(f"  {label:<44}{s:>10.2f}{n / s:>12.0f}{hand['copy_s'] / s:>8.2f}")
            print(f"  (vmkit: {vm['batches']} checkpoints, {vm['validated_batches']} batches validated, "
                  f"verification passed)")


if __name__ == "__main__":
    main()
