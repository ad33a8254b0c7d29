"""Benchmark: synthetic 1M x 768 -> Parquet (vmkit layout) and back, vmkit against pyarrow by hand.

    .venv/bin/python bench/bench_parquet.py [--records 1000000] [--dim 768] [--batch-size 10000]

Batches of 10,000 by default (vmkit: a part file per core for each; the hand writer: a row group each): every vmkit write is
made durable (the part and the manifest fsynced, three fsyncs a batch) and checkpointed, a
cost per batch that the hand writer, which never fsyncs, does not pay.

Both sides read the same synthetic records (``synthetic://x?n=N&dim=D``) in the same batches:

- write, hand: each batch becomes an Arrow table (id text, fixed-size-list<float32> vector,
  metadata as orjson text) appended as a row group to one file by ``pq.ParquetWriter``, with
  the writer options vmkit uses (``write_options``: no dictionary or statistics on vectors;
  pyarrow's defaults write the same table four times slower).
- write, vmkit: ``Migration.run()`` synthetic -> ``parquet://`` with a checkpoint per batch
  and sampled validation on (10 % of batches read back and compared): one part per batch (two here: 10,000 rows on 2 cores),
  each written aside, fsynced and renamed, the manifest likewise. Full verification is timed apart.
- write, connector alone: the hand writer's scan loop with ``upsert`` into ``parquet://`` per
  batch (durable parts and manifest, no runner): the connector's share of the migration.
- read, hand: ``ParquetFile.iter_batches`` over the hand file, each batch to numpy vectors,
  Python ids and metadata dicts (orjson): what a consumer needs of the records.
- read, vmkit: ``Migration.run()`` ``parquet://`` -> ``sink://`` (the sink keeps a digest per
  record), sha256 of every part checked, a checkpoint per batch (no sampled validation: the
  sink keeps digests only and cannot be read back).

Prints seconds, records/s and the vmkit/hand ratio of each, and the peak RSS of each side
(ru_maxrss; each side runs in a process of its own, after the one before it finished). Each
writer is followed by its reader, then its files are removed, so every writer starts with the
same page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from vmkit import Migration, connect  # noqa: E402
from vmkit.connectors.parquet.write import write_options  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hand_write(source: str, path: Path, batch_size: int, dim: int) -> int:
    schema = pa.schema([("id", pa.string()), ("values", pa.list_(pa.float32(), dim)), ("metadata", pa.string())])
    conn, cursor, n = connect(source), None, 0
    with pq.ParquetWriter(path, schema, **write_options(schema.names)) as writer:
        while True:
            b, cursor = conn.scan(cursor, batch_size)
            values = pa.FixedSizeListArray.from_arrays(pa.array(b.vectors.reshape(-1)), dim)
            writer.write_table(pa.Table.from_arrays(
                [pa.array([str(i) for i in b.ids]), values, pa.array([orjson.dumps(m).decode() for m in b.metadata])],
                schema=schema))
            n += len(b)
            if cursor is None:
                return n


def connector_write(source: str, target: str, batch_size: int, dim: int) -> int:
    """The connector alone: the same scan loop as ``hand_write``, each batch one ``upsert``."""
    from vmkit.connectors.base import TargetSpec

    conn, cursor, n = connect(source), None, 0
    with connect(target) as dst:
        dst.create(TargetSpec("x", dim, "dot"))
        while True:
            b, cursor = conn.scan(cursor, batch_size)
            dst.upsert(b)
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


def phase(name: str, root: Path, n: int, dim: int, bs: int, sample_rate: float) -> dict[str, float]:
    """One side of the run, timed; the caller runs each in a process of its own so that each
    peak RSS is that side's alone."""
    source = f"synthetic://x?n={n}&dim={dim}"
    extra: dict[str, float] = {}
    t = time.perf_counter()
    if name == "hand-write":
        assert hand_write(source, root / "hand.parquet", bs, dim) == n
    elif name == "connector-write":
        assert connector_write(source, f"parquet://{root}/alone", bs, dim) == n
    elif name == "hand-read":
        assert hand_read(root / "hand.parquet", bs) == n
    elif name == "vmkit-write":
        m = Migration.create(source, f"parquet://{root}/vm", migration_id="w", state=root / "w.db",
                             batch_size=bs, verify=False, sample_rate=sample_rate)
        t = time.perf_counter()
        m.run()
        extra["seconds_run"] = time.perf_counter() - t
        t2 = time.perf_counter()
        ver = m.verify()
        extra["verify"] = time.perf_counter() - t2
        assert ver.matched == n and not (ver.missing or ver.extra or ver.mismatched), ver
        return {"seconds": extra["seconds_run"], "verify": extra["verify"], "rss": peak_rss_mb()}
    else:  # vmkit-read
        m = Migration.create(f"parquet://{root}/vm", "sink://back", migration_id="r", state=root / "r.db",
                             batch_size=bs, verify=False, sample_rate=0.0)  # the sink cannot be read back
        t = time.perf_counter()
        m.run()
        seconds = time.perf_counter() - t
        with connect("sink://back") as sink:
            assert sink.count() == n, sink.count()
        return {"seconds": seconds, "rss": peak_rss_mb()}
    return {"seconds": time.perf_counter() - t, "rss": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--sample-rate", type=float, default=0.1, help="vmkit's sampled validation of the write")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n, dim, bs = args.records, args.dim, args.batch_size
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.dir), n, dim, bs, args.sample_rate)))
        return
    got: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=str(Path.cwd())) as tmp:
        # Each side reads what it wrote, then its files go: every writer starts with the same
        # page cache (a writer run after 6 GB of another side's files was 30 % slower here).
        for name, done_with in (("hand-write", None), ("hand-read", "hand.parquet"), ("connector-write", "alone"),
                                ("vmkit-write", None), ("vmkit-read", "vm")):
            os.sync()  # untimed: the dirty pages one side left are not written back during the next
            out = subprocess.run([sys.executable, __file__, "--phase", name, "--dir", tmp, "--records", str(n),
                                  "--dim", str(dim), "--batch-size", str(bs), "--sample-rate", str(args.sample_rate)],
                                 check=True, capture_output=True, text=True).stdout
            got[name] = json.loads(out.strip().splitlines()[-1])
            if name == "vmkit-read":
                size = sum(f.stat().st_size for f in (Path(tmp) / "vm").rglob("*.parquet")) / 1e9
            if done_with:
                gone = Path(tmp) / done_with
                shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    print(f"synthetic {n} x {dim} -> parquet (vmkit layout, {size:.2f} GB of parts) -> sink, batch {bs}, "
          f"sampled validation of the write {args.sample_rate:g}")
    print(f"{'':26}{'seconds':>9}{'records/s':>12}{'ratio':>8}{'peak RSS MB':>13}")
    rows = [("write: pyarrow by hand", "hand-write", "hand-write"),
            ("write: connector upserts", "connector-write", "hand-write"),
            ("write: vmkit migration", "vmkit-write", "hand-write"),
            ("read: pyarrow by hand", "hand-read", "hand-read"),
            ("read: vmkit migration", "vmkit-read", "hand-read")]
    for label, side, base in rows:
        r = got[side]
        ratio = "" if side == base else f"{got[base]['seconds'] / r['seconds']:.2f}x"
        print(f"{label:26}{r['seconds']:9.2f}{n / r['seconds']:12,.0f}{ratio:>8}{r['rss']:13,.0f}")
    v = got["vmkit-write"]["verify"]
    print(f"vmkit full verification of the parquet target: {v:.2f} s ({n / v:,.0f} records/s)")


if __name__ == "__main__":
    main()
