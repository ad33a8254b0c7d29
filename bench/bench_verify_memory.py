"""Benchmark: memory of full verification, synthetic records into the fingerprint sink.

    .venv/bin/python bench/bench_verify_memory.py [--records 10000000] [--dim 64]
                                                  [--baseline-records 1000000]

Each measurement runs in a child process of its own: the sink is filled from the synthetic
source, the peak-RSS mark is reset (/proc/self/clear_refs), then the measured step runs and
the child prints records, seconds, peak RSS and the growth of RSS over the filled sink per
record. Rows:

- ``bare scan``: generate, map and hash every source record, nothing kept (the floor);
- ``old: dict of digests``: the verification before issue 19 (a dict of 16-byte digests
  per target key, popped while the source streams), at ``--baseline-records``;
- ``new: digest table``: ``vmkit.verify`` (vmkit.migration.digest_table), at both sizes.

The stock sink hands its digests over as one list (a snapshot of its dict, ~64 bytes a record
of its own); ``streaming sink`` rows use a sink whose ``digests()`` streams instead, so that
the growth measured is verification's own. The dimension is small by default (64): the
vectors do not change what verification keeps, only how long generating them takes.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit.connectors import connect  # noqa: E402
from vmkit.connectors.sink import _LOCK, SinkConnector  # noqa: E402
from vmkit.core.fingerprint import batch_digests  # noqa: E402
from vmkit.migration.verification import verify  # noqa: E402
from vmkit.planning.planner import plan as make_plan  # noqa: E402
from vmkit.planning.transform import map_batch  # noqa: E402

PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StreamingSink(SinkConnector):
    """The sink with digests() streamed in slices of its dict instead of one list."""

    def digests(self, **hash_opts: Any) -> Iterator[tuple[tuple[str, Any], bytes]]:
        store = self._store()
        keys = iter(store)
        while True:
            with _LOCK:
                chunk = [(k, store[k]) for _, k in zip(range(65536), keys)]
            if not chunk:
                return
            yield from chunk


def child(args: argparse.Namespace) -> None:
    n, dim = args.records, args.dim
    source = connect(f"synthetic://bench?n={n}&dim={dim}&seed=3")
    target = StreamingSink("sink://bench") if args.sink == "streaming" else connect("sink://bench")
    the_plan = make_plan(source, target, sample=0)
    # Every step starts from a filled sink, so imports and kernels are warm alike.
    target.create(the_plan.target)
    cursor = None
    while True:
        batch, cursor = source.scan(cursor, 10_000)
        target.upsert(map_batch(batch, the_plan).batch)
        if cursor is None:
            break
    table_bytes = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "digest table" in record.getMessage():
                table_bytes.append(float(record.args[1]) * 1e6)  # type: ignore[index]

    logging.getLogger("vmkit.migration.verification").addHandler(Grab())
    logging.getLogger("vmkit.migration.verification").setLevel(logging.INFO)
    reset = reset_peak()
    before = rss_bytes()
    t = time.perf_counter()
    ok = True
    if args.step == "scan":
        cursor = None
        while True:
            batch, cursor = source.scan(cursor, 1000)
            for _ in batch_digests(map_batch(batch, the_plan).batch):
                pass
            if cursor is None:
                break
    elif args.step == "dict":
        digests = dict(target.digests())
        matched, cursor = 0, None
        while True:
            batch, cursor = source.scan(cursor, 1000)
            for key, digest in batch_digests(map_batch(batch, the_plan).batch):
                matched += digests.pop(key, None) == digest
            if cursor is None:
                break
        ok = matched == n and not digests
    else:
        result = verify(source, target, the_plan)
        ok = result.passed and result.matched == n
    seconds = time.perf_counter() - t
    peak = peak_bytes()
    print(json.dumps({"records": n, "seconds": seconds, "peak": peak, "before": before, "reset": reset,
                      "ok": ok, "table_bytes": table_bytes[0] if table_bytes else None}))


def run(step: str, records: int, dim: int, sink: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", "--step", step, "--records", str(records),
                          "--dim", str(dim), "--sink", sink], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--baseline-records", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--step", default="table", help=argparse.SUPPRESS)
    ap.add_argument("--sink", default="streaming", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    small, big = args.baseline_records, args.records
    rows = [
        ("bare scan (generate, map, hash)", "scan", big, "streaming"),
        ("old: dict of digests", "dict", small, "streaming"),
        ("new: digest table", "table", small, "streaming"),
        ("new: digest table, stock sink", "table", small, "stock"),
        ("new: digest table", "table", big, "streaming"),
    ]
    print(f"full verification memory, synthetic x {args.dim} dims -> sink; growth = peak RSS during the "
          "step minus RSS before it (the filled sink)")
    print(f"{'':34}{'records':>11}{'seconds':>9}{'records/s':>11}{'peak RSS MB':>13}{'growth MB':>11}"
          f"{'B/record':>10}{'table B/rec':>12}")
    for label, step, n, sink in rows:
        r = run(step, n, args.dim, sink)
        growth = max(0, r["peak"] - r["before"])
        table = "-" if r["table_bytes"] is None else f"{r['table_bytes'] / n:.1f}"
        flag = "" if r["ok"] else "  (FAILED)"
        print(f"{label:34}{n:>11,}{r['seconds']:9.1f}{n / r['seconds']:11,.0f}{r['peak'] / 1e6:13.0f}"
              f"{growth / 1e6:11.0f}{growth / n:10.1f}{table:>12}{flag}"
              + ("" if r["reset"] else "  (peak not reset: growth includes filling the sink)"))


if __name__ == "__main__":
    main()
