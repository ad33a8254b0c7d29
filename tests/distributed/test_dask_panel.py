"""The notebook panel running a migration on Dask: progress per partition, the dashboard's
address when the cluster offers one, Pause and Stop through the same buttons; the plan's
table lists the partitions (01_explore_and_plan)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from engines.postgres import PgServer

from vmkit import Migration
from vmkit.notebook.partition_view import dashboard_link, partitions_html

pytest.importorskip("ipywidgets")


def _wait(check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_panel_runs_on_dask_and_shows_each_partition(dask_client: Any, pg_server: PgServer, pg_db: str,
                                                        tmp_path: Path) -> None:
    from vmkit.notebook.widgets import MigrationPanel, run_migration

    mig = Migration.create("synthetic://s?n=4000&dim=8", pg_server.uri(pg_db, "docs"), state=tmp_path / "s.db",
                           batch_size=100, partitions=8, chunk_batches=2)
    assert "<b>partitions</b> (8, read independently)" in mig.plan._repr_html_()
    panel = run_migration(mig, interactive=True, executor="dask", cluster=dask_client)
    assert isinstance(panel, MigrationPanel)
    _wait(lambda: "reading" in panel.partitions.value or not panel.running)
    panel.buttons["Pause"].click()
    _wait(lambda: panel.controller.phase == "paused")
    held = mig.store.get(mig.id).batches
    time.sleep(1.0)
    assert mig.store.get(mig.id).batches == held  # no chunk submitted while paused
    panel.buttons["Resume"].click()
    assert panel.controller.join(120)
    panel.refresh()
    assert str(panel).startswith("[completed]")
    assert "8 of 8 read to their end" in panel.partitions.value and panel.partitions.value.count("done") == 8
    assert "of ~500" in panel.partitions.value  # each partition's estimate


def test_partition_view_reads_the_dashboard_from_the_run_event(tmp_path: Path) -> None:
    from vmkit.state.store import StateStore

    store = StateStore(tmp_path / "s.db")
    store.create("m", "synthetic://a?n=10&dim=2", "sink://b", {})
    assert dashboard_link(store, "m") is None and partitions_html(store, "m") == ""
    store.event("m", "dask run", "2 workers, dashboard http://127.0.0.1:8787/status")
    assert dashboard_link(store, "m") == "http://127.0.0.1:8787/status"
