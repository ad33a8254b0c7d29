"""The demo behind ``make demo``: a real migration on the embedded default, no credentials.

Generates a Qdrant (embedded, local directory) collection of synthetic records with varied
metadata and mixed id kinds, migrates it into a second directory with checkpoints and sampled
validation, then fully verifies it.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from vmkit.connectors.datasets import fill
from vmkit.migration.runner import Migration
from vmkit.migration.status import Status
from vmkit.state.store import StateStore

log = logging.getLogger("vmkit.notebook.demo")


def run_demo(workdir: Path, records: int = 20_000, dim: int = 768) -> Status:
    workdir = workdir.resolve()
    source_dir, target_dir = workdir / "source-qdrant", workdir / "target-qdrant"
    marker = workdir / f"source-{records}x{dim}.ok"
    if not marker.exists():  # (re)generate the source only when it is not complete
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        t0 = time.monotonic()
        log.info("generating %d x %d records into %s", records, dim, source_dir)
        fill(f"qdrant://{source_dir}?collection=docs", records, dim)
        marker.touch()
        log.info("source ready in %.1f s", time.monotonic() - t0)
    shutil.rmtree(target_dir, ignore_errors=True)
    state = StateStore(workdir / "state.db")
    mid = f"demo-{int(time.time())}"
    migration = Migration.create(
        f"qdrant://{source_dir}?collection=docs", f"qdrant://{target_dir}?collection=docs",
        migration_id=mid, state=state,
    )
    log.info("plan:\n%s", migration.plan)
    t0 = time.monotonic()
    status = migration.run()
    log.info("migration %s finished in %.1f s (state file %s)", mid, time.monotonic() - t0, state.path)
    return status
