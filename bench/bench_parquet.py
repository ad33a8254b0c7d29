"""Benchmark: synthetic 1M x 768 -> Parquet (vmkit layout) and back, vmkit against pyarrow by hand.

    .venv/bin/python bench/bench_parquet.py [--records 1000000] [--dim 768] [--batch-size 1000]

Both sides read the same synthetic records (``synthetic://x?n=N&dim=D``) in the same batches:

- write, hand: each batch becomes an Arrow table (id text, fixed-size-list<float32> vector,
  metadata as orjson text) appended as a row group to one file by ``pq.ParquetWriter``.
- write, vmkit: ``Migration.run()`` synthetic -> ``parquet://`` with a checkpoint per batch
  and sampled validation on (10 % of batches read back and compared): one part per batch,
  each written aside, fsynced and renamed, the manifest likewise. Full verification is timed apart.
- read, hand: ``ParquetFile.iter_batches`` over the hand file, each batch to numpy vectors,
  Python ids and metadata dicts (orjson): what a consumer needs of the records.
- read, vmkit: ``Migration.run()`` ``parquet://`` -> ``sink://`` (the sink keeps a digest per
  record), sha256 of every part checked, a checkpoint per batch (no sampled validation: the
  sink keeps digests only and cannot be read back).

Prints seconds, records/s and the vmkit/hand ratio of each, and peak RSS after each phase
(ru_maxrss: the high-water mark of this process so far).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from vmkit import Migration, connect  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hand_write(source: str, path: Path, batch_size: int, dim: int) -> int:
    schema = pa.schema([("id", pa.string()), ("values", pa.list_(pa.float32(), dim)), ("metadata", pa.string())])
    conn, cursor, n = connect(source), None, 0
    with pq.ParquetWriter(path, schema) as writer:
        while True:
            b, cursor = conn.scan(cursor, batch_size)
            values = pa.FixedSizeListArray.from_arrays(pa.array(b.vectors.reshape(-1)), dim)
            writer.write_table(pa.Table.from_arrays(
                [pa.array([str(i) for i in b.ids]), values, pa.array([orjson.dumps(m).decode() for m in b.metadata])],
                schema=schema))
            n += len(b)
            if cursor is None:
                return n


def hand_read(path: Path, batch_size: int) -> int:
    n = 0
    for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        values = rb.column(1)
        vectors = values.values.to_numpy().reshape(len(rb), -1).copy()
        ids = rb.column(0).to_pylist()
        metadata = [orjson.loads(s) for s in rb.column(2).to_pylist()]
        assert len(ids) == len(metadata) == vectors.shape[0]
        n += len(ids)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()
    n, dim, bs = args.records, args.dim, args.batch_size
    source = f"synthetic://x?n={n}&dim={dim}"
    rows = []
    with tempfile.TemporaryDirectory(dir=str(Path.cwd())) as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        assert hand_write(source, root / "hand.parquet", bs, dim) == n
        hand_w = time.perf_counter() - t
        rss_hand_w = peak_rss_mb()

        m = Migration.create(source, f"parquet://{root}/vm", migration_id="w", state=root / "s.db",
                             batch_size=bs, verify=False)
        t = time.perf_counter()
        m.run()
        vm_w = time.perf_counter() - t
        rss_vm_w = peak_rss_mb()
        t = time.perf_counter()
        ver = m.verify()
        verify_w = time.perf_counter() - t
        assert ver.matched == n and not (ver.missing or ver.extra or ver.mismatched), ver

        t = time.perf_counter()
        assert hand_read(root / "hand.parquet", bs) == n
        hand_r = time.perf_counter() - t
        rss_hand_r = peak_rss_mb()

        m = Migration.create(f"parquet://{root}/vm", "sink://back", migration_id="r", state=root / "s.db",
                             batch_size=bs, verify=False, sample_rate=0.0)  # the sink cannot be read back
        t = time.perf_counter()
        m.run()
        vm_r = time.perf_counter() - t
        rss_vm_r = peak_rss_mb()
        with connect("sink://back") as sink:
            assert sink.count() == n, sink.count()
        size = sum(f.stat().st_size for f in (root / "vm").rglob("*.parquet")) / 1e9
        rows = [("write: pyarrow by hand", hand_w, rss_hand_w, None),
                ("write: vmkit migration", vm_w, rss_vm_w, hand_w / vm_w),
                ("read: pyarrow by hand", hand_r, rss_hand_r, None),
                ("read: vmkit migration", vm_r, rss_vm_r, hand_r / vm_r)]
    print(f"synthetic {n} x {dim} -> parquet (vmkit layout, {size:.2f} GB of parts) -> sink, batch {bs}")
    print(f"{'':26}{'seconds':>9}{'records/s':>12}{'ratio':>8}{'peak RSS MB':>13}")
    for name, secs, rss, ratio in rows:
        r = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{name:26}{secs:9.2f}{n / secs:12,.0f}{r:>8}{rss:13,.0f}")
    print(f"vmkit full verification of the parquet target: {verify_w:.2f} s ({n / verify_w:,.0f} records/s)")


if __name__ == "__main__":
    main()
