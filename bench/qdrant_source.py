"""The Qdrant local source the load benchmarks share: generated once per size into a work
directory (the embedded engine takes minutes to fill 100k x 768) and reused while complete."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path


def qdrant_source(workdir: Path, records: int, dim: int) -> str:
    """URI of a Qdrant local collection of ``records`` x ``dim`` (vmkit.connectors.datasets)."""
    src = workdir / f"src-{records}x{dim}"
    if not (src / ".complete").exists():
        shutil.rmtree(src, ignore_errors=True)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from vmkit.connectors.datasets import fill

        started = time.perf_counter()
        fill(f"qdrant://{src}?collection=docs", records, dim, metric="cosine")
        (src / ".complete").touch()
        print(f"generated the Qdrant source, {records} x {dim}, in {time.perf_counter() - started:.1f} s")
    return str(src)
