"""Test helpers shared across folders: records of the shape the Weaviate tests use, filling a
collection with them, and a copy through a plan done by hand (as a migration would, without
its ledger), for checks that must look at the target afterwards."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vmkit.connectors import connect
from vmkit.connectors.base import Connector, TargetSpec
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import map_batch


def rich_records(ids: list[Any], ns: str = "", seed: int = 0, dim: int = 8) -> RecordBatch:
    """Records with scalar, list and nested metadata, seeded vectors."""
    rng = np.random.default_rng(seed)
    metas = [{"title": f"doc {i}", "rank": i, "score": i / 7, "ok": i % 3 == 0, "tags": ["x", f"t{i % 4}"],
              "info": {"author": f"a{i % 5}", "year": 2000 + i % 20}} for i in range(len(ids))]
    return RecordBatch(list(ids), rng.standard_normal((len(ids), dim)).astype(np.float32), metas, namespace=ns)


def fill(uri: str, metric: str, batches: list[RecordBatch], dim: int = 8) -> None:
    """Create the collection ``uri`` names and write the batches into it."""
    with connect(uri) as conn:
        conn.create(TargetSpec("c", dim, metric))
        for b in batches:
            conn.upsert(b)


def copy_through(source: Connector, target: Connector, scan_size: int = 1000, sample: int = 0) -> Plan:
    """Plan (on a sample of ``sample`` records, none by default), create the target and write every scanned batch mapped by the plan."""
    the_plan = make_plan(source, target, sample=sample)
    target.create(the_plan.target)
    cursor = None
    while True:
        batch, cursor = source.scan(cursor, scan_size)
        target.upsert(map_batch(batch, the_plan).batch)
        if cursor is None:
            return the_plan


def scratch_dir(factory: Any, prefix: str) -> Iterator[Path]:
    """A directory for embedded engines, removed afterwards: tmpfs when there is one (Qdrant's
    embedded engine commits SQLite once per point: 20,000 records took 115 s on this VM's disk
    and 7 s on tmpfs). ``factory`` is pytest's tmp_path_factory, the fallback."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix=prefix) as d:
            yield Path(d)
    else:
        yield factory.mktemp(prefix)
