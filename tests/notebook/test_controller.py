"""MigrationController: the worker-thread loop the notebook buttons drive. memory:// targets
with latency make each batch take time, so "within one batch" is observable."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import faults_for
from vmkit.core.errors import StateError, TerminalError
from vmkit.core.records import RecordBatch
from vmkit.notebook.controller import MigrationController, Update, text_progress

N, BATCH = 1000, 50
TOTAL = N // BATCH
FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}


@pytest.fixture
def migration(tmp_path) -> Migration:
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(3)
    src.upsert(RecordBatch(ids=[f"r{i}" for i in range(N)], vectors=rng.standard_normal((N, 8)),
                           metadata=[{"i": i} for i in range(N)]))
    faults_for("dst").latency_s = 0.005  # every target call: a batch takes a few of these
    return Migration.create("memory://src", "memory://dst", migration_id="c", state=tmp_path / "s.db",
                            batch_size=BATCH, sample_rate=0.5, **FAST)


def committed(m: Migration) -> int:
    return m.store.get(m.id).batches


def wait_for_batches(ctl: MigrationController, n: int) -> None:
    reached = threading.Event()
    ctl.add_listener(lambda u: reached.set() if u.progress and u.progress.batches >= n else None)
    if not (ctl.progress and ctl.progress.batches >= n):
        assert reached.wait(30), "no progress"


def ledger_seqs(m: Migration) -> list[int]:
    return [r[0] for r in m.store.query("SELECT seq FROM batches WHERE migration_id=? ORDER BY seq", m.id)]


def test_pause_holds_with_connections_open_and_resumes_at_once(migration: Migration) -> None:
    phases: list[str] = []
    ctl = MigrationController(migration)
    ctl.add_listener(lambda u: phases.append(u.phase) if u.kind == "phase" else None)
    ctl.start()
    wait_for_batches(ctl, 2)
    ctl.pause()
    at_pause = committed(migration)  # read after the call: a batch may be in flight
    assert ctl.wait_phase("paused", timeout=30)
    held = committed(migration)
    assert held <= at_pause + 1 < TOTAL
    assert (ctl.running, migration.status().state) == (True, "in_progress"), phases
    assert migration._source is not None and migration._target is not None  # kept open
    assert migration.status().running  # the lease is still held: nobody else may run it
    assert ctl.meter().rate is None and ctl.meter().eta_s is None  # not copying: no rate, no ETA
    paused_at = time.monotonic()
    assert not ctl.wait_phase("completed", timeout=1.0)  # held: no batch while paused
    assert committed(migration) == held
    ctl.resume()
    assert ctl.join(30) and ctl.phase == "completed" and ctl.error is None
    paused_s = time.monotonic() - paused_at
    assert ledger_seqs(migration) == list(range(1, TOTAL + 1))  # the pause is no batch
    durations = [r[0] for r in migration.store.query(
        "SELECT duration_s FROM batches WHERE migration_id=?", migration.id)]
    assert max(durations) < 1.0 <= paused_s  # no batch's duration holds the pause
    assert ctl.progress is not None and ctl.progress.seconds < paused_s  # nor the session's copy time
    assert migration.status().verification == "passed"
    assert ctl.verifying == ("source", N)  # full verification reported its reading as it went
    assert phases[:3] == ["connecting", "copying", "validating"] and "verifying" in phases
    assert phases[phases.index("pausing"):phases.index("pausing") + 3] == ["pausing", "paused", "copying"]


def test_pause_from_a_listener_holds_exactly_there(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.add_listener(lambda u: ctl.pause() if u.progress and u.progress.batches == 3 else None)
    ctl.start()
    assert ctl.wait_phase("paused", timeout=30)
    assert committed(migration) == 3
    ctl.stop()  # a paused run stops at once
    assert ctl.join(30) and ctl.phase == "stopped" and committed(migration) == 3


def test_pause_right_after_start_is_not_lost(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.start()
    ctl.pause()
    assert ctl.wait_phase("paused", timeout=30)
    assert committed(migration) <= 1
    ctl.stop()
    assert ctl.join(30) and ctl.phase == "stopped"


def test_stop_takes_effect_within_one_batch_and_start_continues(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.start()
    wait_for_batches(ctl, 2)
    ctl.stop()
    at_stop = committed(migration)
    assert ctl.join(30)
    assert committed(migration) <= at_stop + 1 < TOTAL
    assert ctl.phase == "stopped" and migration.status().state == "in_progress"
    with pytest.raises(StateError):
        ctl.resume()  # resume is for a pause; a stopped run is started again
    ctl.start()
    assert ctl.join(30) and ctl.phase == "completed"
    assert ledger_seqs(migration) == list(range(1, TOTAL + 1))


def test_worker_exception_is_captured_and_reported(migration: Migration) -> None:
    updates: list[Update] = []
    ctl = MigrationController(migration)
    ctl.add_listener(updates.append)
    faults_for("dst").terminal_rate = 1.0
    ctl.start()
    assert ctl.join(30)
    assert isinstance(ctl.error, TerminalError) and ctl.phase == "failed" and not ctl.running
    assert next(u for u in updates if u.kind == "error").error is ctl.error
    with pytest.raises(TerminalError):
        ctl.raise_error()
    faults_for("dst").terminal_rate = 0.0
    ctl.start()  # a failed run is started again from the checkpoint
    assert ctl.join(30) and ctl.phase == "completed" and ctl.error is None


def test_a_broken_listener_does_not_stop_the_migration(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.add_listener(lambda u: 1 / 0)
    ctl.start()
    assert ctl.join(30) and ctl.phase == "completed"


def test_rollback_stops_then_rolls_back_and_drops_the_target(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.start()
    wait_for_batches(ctl, 2)
    status = ctl.rollback(drop_target=True)
    assert status.state == "rolled_back" and ctl.phase == "rolled_back"
    assert status.batches < TOTAL
    assert connect("memory://dst").describe() is None
    assert not any(t.name == "vmkit-c" for t in threading.enumerate())


def test_headless_run_is_synchronous_with_text_progress(migration: Migration) -> None:
    ctl = MigrationController(migration)
    out = io.StringIO()
    close = text_progress(ctl, file=out, mininterval=0)
    try:
        status = ctl.run()
    finally:
        close()
    assert status.state == "completed" and ctl.phase == "completed"
    assert not any(t.name.startswith("vmkit-") for t in threading.enumerate())
    assert f"{N}/{N}" in out.getvalue() and "completed" in out.getvalue()
    meter = ctl.meter()
    assert (meter.done, meter.total) == (N, N) and "100%" in meter.text()


def test_headless_run_reraises_the_worker_error(migration: Migration) -> None:
    faults_for("dst").terminal_rate = 1.0
    ctl = MigrationController(migration)
    with pytest.raises(TerminalError):
        ctl.run()
    assert ctl.phase == "failed" and isinstance(ctl.error, TerminalError)


def test_max_batches_stops_the_session(migration: Migration) -> None:
    ctl = MigrationController(migration, max_batches=4)
    ctl.run()
    assert committed(migration) == 4 and ctl.phase == "stopped"


def test_starting_twice_is_refused(migration: Migration) -> None:
    ctl = MigrationController(migration)
    ctl.start()
    with pytest.raises(StateError):
        ctl.start()
    ctl.stop()
    assert ctl.join(30)
