"""A migration split into partitions and run on a LocalCluster of two processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from engines.postgres import PgServer, query

from vmkit import Migration
from vmkit.core.errors import StateError
from vmkit.state.partitions import rows


def test_synthetic_to_pgvector_in_8_partitions(dask_client: Any, pg_server: PgServer, pg_db: str,
                                               tmp_path: Path) -> None:
    n = 5_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=16", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=200, partitions=8, chunk_batches=2)
    assert len(mig.plan.partitions) == 8
    assert "partitions: 8" in str(mig.plan)
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert rec.state == "completed", status
    assert rec.verification == "passed"
    assert rec.records_read == rec.records_written == n
    parts = rows(mig.store, mig.id)
    assert len(parts) == 8 and all(p.scan_done for p in parts)
    assert sum(p.records_read for p in parts) == n
    # every batch row is tagged with its partition, seqs 1..batches without gaps
    tagged = mig.store.query("SELECT count(*), min(seq), max(seq) FROM partition_batches WHERE migration_id=?", mig.id)
    assert tagged[0] == (rec.batches, 1, rec.batches)
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == n


def test_pgvector_key_ranges_on_dask(dask_client: Any, pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    """A pgvector source read in 8 primary-key ranges sampled from the table (text keys, so the
    ranges follow PostgreSQL's own order), equal at the end."""
    n = 3_000
    src = pg_server.uri(pg_db, "src", pk="text")
    seed = Migration.create(f"synthetic://s?n={n}&dim=8", src, state=tmp_path / "seed.db", batch_size=500)
    assert seed.run().state == "completed"
    mig = Migration.create(src, pg_server.uri(pg_db, "dst"), state=tmp_path / "state.db",
                           batch_size=100, partitions=8, chunk_batches=2)
    bounds = [(p["lower"], p["upper"]) for p in mig.plan.partitions]
    assert len(bounds) == 8 and bounds[0][0] is None and bounds[-1][1] is None
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gaps
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert rec.records_read == rec.records_written == n
    assert sorted(p.records_read > 0 for p in rows(mig.store, mig.id)) == [True] * 8  # every range read some
    assert query(pg_server, pg_db, "SELECT count(*) FROM dst")[0][0] == n


def test_worker_killed_mid_run(dask_client: Any, pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    """A worker process SIGKILLed while chunks run: its nanny starts another, the chunk runs
    again from the committed cursor, and nothing is lost or counted twice."""
    n = 12_000
    pids = dask_client.run(os.getpid)
    mig = Migration.create(f"synthetic://s?n={n}&dim=16", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=200, partitions=8, chunk_batches=2)
    killed: list[int] = []

    def kill_one(progress: Any) -> None:
        if not killed and progress.batches >= 8:
            killed.append(min(pids.values()))
            os.kill(killed[0], signal.SIGKILL)

    status = mig.run(executor="dask", cluster=dask_client, on_batch=kill_one)
    rec = mig.store.get(mig.id)
    assert killed and rec.batches > 8  # the kill came mid-run
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert rec.records_read == rec.records_written == n
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == n
    dask_client.wait_for_workers(2, timeout=60)
    assert killed[0] not in dask_client.run(os.getpid).values()  # a new process took its place


def test_stop_between_chunks_then_resume(dask_client: Any, pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    """A stop request (as `vmkit migrate stop` sets it) ends the run after the chunks in
    flight commit; a resume continues every partition from its own cursor."""
    n = 6_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=8", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=100, partitions=8, chunk_batches=2)

    def stop_early(progress: Any) -> None:
        if progress.batches >= 5:
            mig.store.set_flag(mig.id, "stop_requested", True)

    status = mig.run(executor="dask", cluster=dask_client, on_batch=stop_early)
    rec = mig.store.get(mig.id)
    assert status.state == "in_progress" and not rec.scan_done
    assert status.partitions is not None and status.partitions["total"] == 8
    assert f"partitions: {status.partitions['done']} of 8 read to their end" in str(status)
    stopped_at = rec.records_read
    assert 0 < stopped_at < n
    assert sum(p.records_read for p in rows(mig.store, mig.id)) == stopped_at
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert rec.records_read == rec.records_written == n


def test_partitioned_migration_refuses_the_in_process_executor(dask_client: Any, pg_server: PgServer, pg_db: str,
                                                                tmp_path: Path) -> None:
    mig = Migration.create("synthetic://s?n=2000&dim=8", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=100, partitions=4, chunk_batches=2)
    mig.run(executor="dask", cluster=dask_client, max_batches=2)
    with pytest.raises(StateError, match="resume it with `vmkit migrate resume --id .* --workers N`"):
        mig.run()


def test_scheduler_without_workers(pg_server: PgServer, pg_db: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed as dd

    from vmkit.core.errors import ConfigError
    from vmkit.migration import distributed

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1.0)
    mig = Migration.create("synthetic://s?n=100&dim=4", pg_server.uri(pg_db, "docs"), state=tmp_path / "s.db")
    with dd.LocalCluster(n_workers=0, dashboard_address=None) as empty:
        with pytest.raises(ConfigError, match="has no workers"):
            mig.run(executor="dask", cluster=empty.scheduler_address)
    assert mig.store.get(mig.id).records_read == 0


def test_begun_in_one_process_resumed_on_dask(dask_client: Any, pg_server: PgServer, pg_db: str,
                                              tmp_path: Path) -> None:
    """A plan without partitions is one partition; begun in-process, it continues on Dask from
    the in-process cursor, so no record is read (or counted) twice."""
    n = 3_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=8", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=100)
    mig.run(max_batches=7)
    assert mig.store.get(mig.id).records_read == 700
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert rec.records_read == rec.records_written == n and rec.batches == n // 100


def test_pause_holds_every_partition_then_resume_continues(dask_client: Any, pg_server: PgServer, pg_db: str,
                                                          tmp_path: Path) -> None:
    """Pause (the panel's button): the chunks in flight commit, then nothing is submitted while
    paused (the lease kept); resume continues every partition to a verified end."""
    import threading
    import time

    n = 6_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=8", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=100, partitions=8, chunk_batches=2)
    phases: list[str] = []
    mig.on_phase = phases.append

    def pause_early(progress: Any) -> None:
        if progress.batches >= 5 and "paused" not in phases:
            mig.pause()

    done: list[Any] = []
    runner = threading.Thread(target=lambda: done.append(mig.run(executor="dask", cluster=dask_client,
                                                                 on_batch=pause_early)))
    runner.start()
    deadline = time.monotonic() + 60
    while "paused" not in phases:
        assert time.monotonic() < deadline and runner.is_alive(), "never paused"
        time.sleep(0.05)
    held = mig.store.get(mig.id).batches
    time.sleep(2.0)
    rec = mig.store.get(mig.id)
    assert rec.batches == held and rec.lease_owner is not None  # nothing committed while paused
    mig.resume()
    runner.join(120)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed") and rec.records_read == n
