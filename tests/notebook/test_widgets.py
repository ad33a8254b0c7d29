"""MigrationPanel without a frontend: buttons clicked programmatically, the text form read."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import faults_for
from vmkit.core.records import RecordBatch
from vmkit.notebook.widgets import MigrationPanel, run_migration

N, BATCH = 1000, 50
FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}


def make(tmp_path, refuse: str = "", fail_rate: float = 0.0, **opts) -> Migration:
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(2)
    src.upsert(RecordBatch(ids=[f"r{i}" for i in range(N)], vectors=rng.standard_normal((N, 8)),
                           metadata=[{"i": i, "bad": i % 250 == 7} for i in range(N)]))
    faults_for("dst").latency_s = 0.005
    faults_for("dst").invalid_field = refuse  # the target refuses records with this field set
    faults_for("dst").fail_rate = fail_rate  # transient failures, retried
    faults_for("dst").rng = random.Random(1)
    return Migration.create("memory://src", "memory://dst", migration_id="w", state=tmp_path / "s.db",
                            batch_size=BATCH, sample_rate=0.5, **{**FAST, **opts})


def enabled(panel: MigrationPanel) -> set[str]:
    return {name for name, b in panel.buttons.items() if not b.disabled}


def wait_until(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def log_text(panel: MigrationPanel) -> str:
    return "".join(o.get("text", "") for o in panel.log.outputs)


def test_import_vmkit_does_not_import_ipywidgets() -> None:
    code = ("import sys, vmkit, vmkit.notebook.controller, vmkit.notebook.report, vmkit.notebook.notebooks, vmkit.notebook.widgets; "
            "print('ipywidgets' in sys.modules, 'matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]


def test_buttons_drive_the_migration_and_the_text_form_follows(tmp_path) -> None:
    panel = MigrationPanel(make(tmp_path, refuse="bad", fail_rate=0.3))
    assert str(panel).startswith("[idle]") and "not_started" in str(panel)
    assert enabled(panel) == {"Start"}
    panel.buttons["Start"].click()
    wait_until(lambda: panel.controller.progress is not None and panel.controller.progress.batches >= 2)
    assert enabled(panel) & {"Pause", "Stop", "Rollback"} == {"Pause", "Stop", "Rollback"}
    panel.buttons["Pause"].click()
    assert panel.controller.wait_phase("paused", timeout=30)
    panel.refresh()
    paused = str(panel)
    assert paused.startswith("[paused]") and "in_progress" in paused and "/1000" in paused
    assert enabled(panel) == {"Resume", "Stop", "Rollback"}
    assert "rec/s" not in panel.meter.value and "ETA" not in panel.meter.value  # not copying
    assert "paused for" in panel.meter.value  # how long, instead
    assert "data-phase='paused'" in panel.state.value
    assert "w: paused" in log_text(panel)  # written from the worker thread via append_stdout
    panel.buttons["Resume"].click()
    assert panel.controller.join(30)
    panel.refresh()
    done = str(panel)
    assert done.startswith("[completed]") and "1000/1000" in done and "full verification: passed" in done
    assert enabled(panel) == set() and panel.bar.value == 1.0 and panel.bar.bar_style == "success"
    assert "mean cosine 1.0000" in panel.validation.value and "rejected records 4" in panel.validation.value
    assert "latest: transient: TransientError: injected" in panel.errors.value  # from the store
    assert panel._repr_mimebundle_()["text/plain"] == str(panel)


def test_stop_and_rollback_buttons(tmp_path) -> None:
    panel = MigrationPanel(make(tmp_path))
    panel.start()
    wait_until(lambda: panel.controller.progress is not None and panel.controller.progress.batches >= 2)
    panel.buttons["Stop"].click()
    assert panel.controller.join(30)
    panel.refresh()
    assert str(panel).startswith("[stopped]") and enabled(panel) == {"Start", "Rollback"}
    panel.drop_target.value = True
    panel.buttons["Rollback"].click()  # runs beside the kernel; wait for it
    wait_until(lambda: panel.controller.phase == "rolled_back")
    panel.refresh()
    assert "rolled_back" in str(panel) and enabled(panel) == set() and panel.bar.bar_style == "danger"
    assert connect("memory://dst").describe() is None


def test_an_error_in_the_worker_shows_in_the_panel(tmp_path) -> None:
    panel = MigrationPanel(make(tmp_path))
    faults_for("dst").terminal_rate = 1.0
    panel.start()
    assert panel.controller.join(30)
    panel.refresh()
    assert str(panel).startswith("[failed]") and "TerminalError" in str(panel)
    assert "TerminalError" in panel.errors.value and "TerminalError" in log_text(panel)
    assert enabled(panel) == {"Start", "Rollback"}


def test_a_refused_click_is_reported_not_raised(tmp_path) -> None:
    panel = MigrationPanel(make(tmp_path))
    panel.buttons["Resume"].click()  # nothing is paused
    assert "Resume failed: StateError" in log_text(panel)


@pytest.mark.parametrize("interactive", [True, False])
def test_run_migration_interactive_or_headless(tmp_path, interactive: bool) -> None:
    result = run_migration(make(tmp_path), interactive=interactive)
    if interactive:
        assert isinstance(result, MigrationPanel) and result.controller.join(30)
        assert result.controller.phase == "completed"
    else:
        assert result.state == "completed"  # synchronous: done when the call returns
        assert not any(t.name.startswith("vmkit-") for t in threading.enumerate())


def test_rerunning_the_cell_shows_the_running_panel_not_a_lease_error(tmp_path) -> None:
    m = make(tmp_path)
    first = run_migration(m, interactive=True)
    assert isinstance(first, MigrationPanel)
    first.controller.pause()  # hold it, so it is surely still running at the second call
    assert first.controller.wait_phase("paused", timeout=30)
    again = run_migration(Migration.open("w", tmp_path / "s.db"), interactive=True)
    assert again is first and "the cell ran again" in log_text(first)
    assert "LeaseHeld" not in log_text(first) and first.controller.error is None
    first.controller.resume()
    assert first.controller.join(30) and first.controller.phase == "completed"


def test_run_log_lines_go_to_the_panel_not_the_last_cell(tmp_path) -> None:
    import io
    import logging

    stream = io.StringIO()
    root_handler = logging.StreamHandler(stream)  # what logging.basicConfig installs
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(root_handler)
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("vmkit.test").info("from the kernel's own thread")
        panel = run_migration(make(tmp_path), interactive=True)
        assert isinstance(panel, MigrationPanel) and panel.controller.join(30)
    finally:
        root.removeHandler(root_handler)
        root.setLevel(old_level)
    assert "created target" in log_text(panel)  # INFO of the worker thread, in the panel
    assert "created target" not in stream.getvalue()
    assert "from the kernel's own thread" in stream.getvalue()  # the cell's own lines stay


def test_panel_draws_live_figures_from_the_store(tmp_path) -> None:
    panel = run_migration(make(tmp_path, refuse="bad"), interactive=True)
    assert isinstance(panel, MigrationPanel) and panel.controller.join(30)
    wait_until(lambda: panel.plot.value[:8] == b"\x89PNG\r\n\x1a\n")
    assert len(panel.plot.value) > 5000 and panel.plot.layout.display == ""


def test_a_run_in_another_process_gets_a_watching_panel_whose_stop_reaches_it(tmp_path) -> None:
    import socket

    m = make(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # the lease as a runner in that live process holds it
        with m.store.transaction() as db:
            db.execute("UPDATE migrations SET lease_owner='x', lease_pid=?, lease_host=?, lease_at=?"
                       " WHERE id='w'", (other.pid, socket.gethostname(), time.time()))
        panel = run_migration(m, interactive=True)
        assert isinstance(panel, MigrationPanel) and panel.watch and panel.running
        assert panel.controller.phase == "idle"  # this kernel runs nothing
        assert enabled(panel) == {"Stop"} and "running in another process" in panel.state.value
        panel.buttons["Stop"].click()
        assert m.store.get("w").stop_requested  # the flag the other runner reads
        assert "stop requested" in log_text(panel)
    finally:
        other.kill()
        other.wait()
    wait_until(lambda: not panel.running)
    panel.refresh()
    assert enabled(panel) == set()


def test_the_watching_panel_stops_a_real_runner_in_another_process(tmp_path) -> None:
    """A CLI runner (a process of its own) holds the lease; the kernel's panel watches it from
    the state store, and its Stop ends that run at a checkpoint, resumable."""
    state = tmp_path / "s.db"
    cli = subprocess.Popen([sys.executable, "-m", "vmkit", "migrate", "start", "--id", "w",
                            "--source", "synthetic://x?n=400000&dim=8", "--target", "sink://w-watch",
                            "--batch-size", "100", "--sample-rate", "0", "--no-progress", "--state", str(state)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from vmkit.state.store import StateStore

        store = StateStore(state)
        wait_until(lambda: store.exists("w") and store.get("w").batches >= 3)
        panel = run_migration(Migration.open("w", store), interactive=True)
        assert panel.watch and enabled(panel) == {"Stop"}
        panel.buttons["Stop"].click()
        out, _ = cli.communicate(timeout=60)
        assert cli.returncode == 0, out
        rec = store.get("w")
        assert rec.state == "in_progress" and not rec.scan_done and rec.lease_owner is None
        assert "vmkit migrate resume --id w" in out
        wait_until(lambda: not panel.running)
        panel.refresh()
        assert enabled(panel) == set()  # the run ended elsewhere: this panel only watched it
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
