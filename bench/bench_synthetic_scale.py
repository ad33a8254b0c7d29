"""Benchmark 4: 1,000,000 x 768 from the deterministic synthetic source into the fingerprint
sink, a checkpoint after every batch and full verification at the end.

    .venv/bin/python bench/bench_synthetic_scale.py [--records 1000000] [--dim 768]

Prints records/s for the copy and for copy + verification, and peak RSS beside the size of
the records themselves (nothing is held: the source regenerates, the sink keeps digests).
Baseline in the same run: a bare loop that only generates and hashes the same records.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit import Migration, connect  # noqa: E402
from vmkit.core.fingerprint import batch_digests  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()
    n, dim = args.records, args.dim
    source = f"synthetic://bench?n={n}&dim={dim}&seed=3"

    t = time.perf_counter()
    conn, cursor, seen = connect(source), None, 0
    while True:
        batch, cursor = conn.scan(cursor, args.batch_size)
        seen += sum(1 for _ in batch_digests(batch))
        if cursor is None:
            break
    bare = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        m = Migration.create(source, "sink://bench", migration_id="scale", state=Path(tmp) / "s.db",
                             batch_size=args.batch_size, sample_rate=0.0, verify=False)
        t = time.perf_counter()
        status = m.run()
        copy = time.perf_counter() - t
        t = time.perf_counter()
        verified = m.verify()
        verify = time.perf_counter() - t
    gb = n * dim * 4 / 1e9
    print(f"synthetic -> sink, {n} x {dim} ({gb:.1f} GB of vectors), batch {args.batch_size}, "
          f"{status.batches} checkpoints")
    print(f"{'':34}{'seconds':>9}{'records/s':>12}")
    print(f"{'baseline: generate + hash only':34}{bare:9.2f}{n / bare:12.0f}")
    print(f"{'vmkit copy (checkpoint per batch)':34}{copy:9.2f}{n / copy:12.0f}")
    print(f"{'vmkit copy + full verification':34}{copy + verify:9.2f}{n / (copy + verify):12.0f}")
    print(f"verification {'passed' if verified.passed else 'FAILED'} ({verified.matched} matched); "
          f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
