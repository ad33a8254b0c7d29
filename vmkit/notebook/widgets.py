"""MigrationPanel: an ipywidgets view over MigrationController (ipywidgets imported lazily).

The batch loop runs in the controller's worker thread, so the kernel stays free and the
buttons stay live. Widget updates come from that thread; text goes to the panel's Output with
``append_stdout`` (ipykernel 7 no longer routes a thread's output to a cell by itself), and so
do the log lines of the run's threads (named ``vmkit-*``): they are kept out of the root
handlers, which would print them under whichever cell ran last. Live figures (throughput,
sampled cosine against the threshold, rejections) are redrawn every few seconds by a thread of
their own, never by a button's handler. Where widgets do not render (saved notebooks,
terminals) the panel's text form is a text meter and the status, like ``tqdm.notebook``.

``run_migration(migration, interactive=...)`` is what notebooks call: a live panel when
interactive (the same panel again when the cell is re-run while its migration runs in this
kernel; a watching panel when another process runs it), otherwise the same controller
synchronously in the cell with a tqdm text bar.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any

from vmkit.core.errors import MissingDependency
from vmkit.migration.runner import Migration
from vmkit.migration.status import Status
from vmkit.notebook import background
from vmkit.notebook.cell_errors import one_sentence
from vmkit.notebook.controller import ACTIVE, COPYING, MigrationController, Update, text_progress
from vmkit.notebook.panel_logs import RunLogHandler, show_run_logs
from vmkit.notebook.panel_text import enabled_buttons, error_lines, phase_line, validation_line
from vmkit.notebook.partition_view import partitions_html

log = logging.getLogger("vmkit.notebook.widgets")

BUTTONS = ("Start", "Pause", "Resume", "Stop", "Rollback")
_BAR_STYLE = {"completed": "success", "paused": "warning", "stopped": "warning", "pausing": "warning",
              "failed": "danger", "rolled_back": "danger", "unverified": "danger"}
_REFRESH_S = 0.25  # progress redraws at most this often; phase changes always redraw
PLOT_EVERY_S = 3.0  # live figures: redrawn this often while the run is active
_LIVE: dict[tuple[str, str], MigrationPanel] = {}  # (state file, id) -> this kernel's panel


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise MissingDependency("ipywidgets", "notebook") from None
    return ipywidgets


class MigrationPanel:
    """Phase, progress bar (records/s, ETA while copying), Start/Pause/Resume/Stop/Rollback,
    live validation statistics and figures, the latest errors and the run's log, for one
    migration. ``watch=True``: another process runs it; the panel follows the state store and
    offers Stop only (a flag the other runner reads before its next batch)."""

    def __init__(self, migration: Migration, *, max_batches: int | None = None,
                 controller: MigrationController | None = None, watch: bool = False,
                 plots: bool = True, **run_options: Any) -> None:
        w = _ipywidgets()
        self.migration = migration
        self.watch = watch
        self.controller = controller or MigrationController(migration, max_batches=max_batches, **run_options)
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="60%"))
        self.meter = w.HTML()
        self.state = w.HTML()
        self.buttons = {name: w.Button(description=name) for name in BUTTONS}
        self.drop_target = w.Checkbox(value=False, description="drop target on rollback",
                                      indent=False)
        self.validation = w.HTML()
        self.errors = w.HTML()
        self.sync = w.HTML()  # lag, phase and passes of a vmkit.sync migration
        self.partitions = w.HTML()  # a run in partitions (Dask): each one's progress, the dashboard
        self.plot = w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))
        self.log = w.Output(layout=w.Layout(max_height="12em", overflow="auto"))
        self.box = w.VBox([
            self.state, w.HBox([self.bar, self.meter]),
            w.HBox([*self.buttons.values(), self.drop_target]),
            self.validation, self.sync, self.partitions, self.errors, self.plot, self.log,
        ])
        self.box.add_class("vmkit-panel")  # what a browser test (and user CSS) finds it by
        actions = {"Start": self.controller.start, "Pause": self.controller.pause,
                   "Resume": self.controller.resume, "Stop": self._stop,
                   "Rollback": self._rollback}
        for name, action in actions.items():
            self.buttons[name].on_click(self._clicked(name, action))
        self._handler = RunLogHandler(self.log)
        self._last_draw, self._force = 0.0, False
        self._plots = plots
        self._plotter: threading.Thread | None = None
        self.controller.add_listener(self._on_update)
        self.refresh()
        if watch:
            self._follow()

    # -- read side ---------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        if self.watch:
            return "running elsewhere" if self.migration.status().running else "watched"
        return self.controller.phase

    @property
    def running(self) -> bool:
        """True while this panel's run (or the watched one) is going on."""
        if self.watch:
            return self.migration.status().running is not None
        return self.controller.running

    def status(self) -> Status:
        return self.migration.status()

    def note(self, text: str) -> None:
        self.log.append_stdout(text + "\n")

    # -- actions -----------------------------------------------------------------------------
    def start(self) -> None:
        self.buttons["Start"].click()

    def _clicked(self, name: str, action: Any) -> Any:
        def handler(_button: Any) -> None:
            try:
                if name in ("Start", "Resume", "Rollback"):
                    self._show_run_logs(True)
                action()
                if name == "Start":
                    self._start_plots()
            except Exception as exc:  # noqa: BLE001 - a click has no caller to raise to
                self.note(f"{name} failed: {type(exc).__name__}: {exc}")
            self.refresh()
        return handler

    def _stop(self) -> None:
        if self.watch:
            self.migration.stop()  # the other runner reads the flag before its next batch
            self.note(f"{self.migration.id}: stop requested from this kernel")
        else:
            self.controller.stop()

    def _show_run_logs(self, on: bool) -> None:
        show_run_logs(id(self), self._handler, on)

    def traceback(self) -> str:
        """The full traceback of the error that ended the last run ("" if none)."""
        import traceback

        err = self.controller.error
        return "".join(traceback.format_exception(err)) if err is not None else ""

    def _rollback(self) -> None:
        # Waiting for the batch in flight would block the kernel: do it beside the cell.
        def work() -> None:
            try:
                self.controller.rollback(drop_target=self.drop_target.value)
            except Exception as exc:  # noqa: BLE001 - recorded and shown by the controller already
                log.debug("rollback of %s failed: %s", self.migration.id, exc)
        background.start(work, f"vmkit-rollback-{self.migration.id}")

    # -- updates from the worker -------------------------------------------------------------
    def _on_update(self, update: Update) -> None:
        now = time.monotonic()
        flicker = update.kind == "phase" and update.phase in COPYING  # copying <-> validating
        if (update.kind == "progress" or flicker) and not self._force and now - self._last_draw < _REFRESH_S:
            return
        # The first batch after a phase change always redraws: the migration state (and so
        # which buttons apply) may have changed with it.
        self._last_draw, self._force = now, update.kind != "progress" and not flicker
        if update.kind == "error" and update.error is not None:
            self.note(f"error: {one_sentence(update.error)} (panel.traceback() shows where)")
        if update.kind != "progress" and not flicker:
            self.note(f"{self.migration.id}: {update.phase}")
            if update.phase not in ACTIVE:
                self._show_run_logs(False)
            if update.phase not in ACTIVE or update.phase == "paused":
                self._draw_plots()  # the figures as of the pause or the end
        self.refresh()

    def refresh(self) -> None:
        """Redraw every widget from the controller and the state store."""
        ctl, status = self.controller, self.migration.status()
        meter = ctl.meter()
        total = meter.total or status.expected_records
        done = status.records_read
        self.bar.value = min(done / total, 1.0) if total else 0.0
        self.bar.bar_style = _BAR_STYLE.get(self.phase, "")
        rate = f" · {meter.rate:,.0f} rec/s" if meter.rate else ""
        eta = f" · ETA {meter.eta_s:,.0f} s" if meter.eta_s is not None else ""
        since = ""  # a phase without a rate (connecting, verifying, paused...): how long so far
        if not self.watch and ctl.phase in ACTIVE and ctl.phase not in COPYING:
            since = f" · {ctl.phase} for {ctl.phase_seconds:,.0f} s"
            if ctl.phase == "verifying" and ctl.verifying is not None:
                what, n = ctl.verifying
                since += f" · {what}: {n:,} of ~{total:,} records read"
        self.meter.value = html.escape(f"{done:,}/{total:,} rec{rate}{eta}{since}")
        self.state.value = phase_line(status, self.phase)
        self.validation.value = html.escape(validation_line(status))
        errors = error_lines(status, None if self.watch else ctl.error)
        self.errors.value = "<br>".join(html.escape(e) for e in errors) or "no errors"
        if status.partitions:
            self.partitions.value = partitions_html(self.migration.store, self.migration.id)
        if status.sync:
            from vmkit.state.journal import SyncStatus

            self.sync.value = SyncStatus(**status.sync)._repr_html_()
        if status.sync:  # driven by vmkit.sync
            enabled: set[str] = set()
        elif self.watch:
            enabled = {"Stop"} if status.running else set()
        else:
            enabled = enabled_buttons(ctl.phase, status.state)
        for name, button in self.buttons.items():
            button.disabled = name not in enabled

    # -- live figures --------------------------------------------------------------------------
    def _draw_plots(self) -> None:
        if not self._plots:
            return
        try:
            from vmkit.notebook.live import figure_png, live_figure

            self.plot.value = figure_png(live_figure(self.migration))
            self.plot.layout.display = ""
        except Exception:  # noqa: BLE001 - a figure must never stop the run or the panel
            log.debug("live figure of %s failed", self.migration.id, exc_info=True)

    def _start_plots(self) -> None:
        if not self._plots or (self._plotter is not None and self._plotter.is_alive()):
            return

        def loop() -> None:
            while True:
                self._draw_plots()
                if not self.running or background.closing.wait(PLOT_EVERY_S):
                    return
                self.refresh()  # the phase's clock moves on even when no batch commits

        self._plotter = background.start(loop, f"plots-{self.migration.id}")

    def _follow(self) -> None:
        """Watching another process's run: redraw from the state store until it ends."""
        def loop() -> None:
            while True:
                self.refresh()
                self._draw_plots()
                if not self.running or background.closing.wait(1.0):
                    return

        background.start(loop, f"watch-{self.migration.id}")

    # -- text form ---------------------------------------------------------------------------
    def __str__(self) -> str:
        ctl = self.controller
        head = f"[{self.phase}] {ctl.meter().text()}"
        lines = [head, *self.migration.status().lines()]
        if ctl.error is not None:
            lines.append(f"  last error: {type(ctl.error).__name__}: {ctl.error}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = str(self)
        return bundle


def run_migration(migration: Migration, *, interactive: bool = True,
                  max_batches: int | None = None, **run_options: Any) -> MigrationPanel | Status:
    """Interactive: a started MigrationPanel (show it as the cell's value); run again while
    the migration runs in this kernel, the same panel; while another process runs it, a
    panel that watches. Headless: run in this cell with a text bar and return the final
    Status; no thread outlives the cell. ``run_options`` go to ``Migration.run`` (on Dask:
    ``executor="dask"`` with ``workers=N`` or ``cluster=`` a client or scheduler address)."""
    if interactive:
        key = (str(migration.store.path.resolve()), migration.id)
        live = _LIVE.get(key)
        if live is not None and live.running:
            live.note(f"{migration.id}: the cell ran again while this migration runs: its panel")
            return live
        if migration.status().running:  # the lease is held by another live process
            return MigrationPanel(migration, watch=True)
        panel = MigrationPanel(migration, max_batches=max_batches, **run_options)
        _LIVE[key] = panel
        panel.start()
        return panel
    controller = MigrationController(migration, max_batches=max_batches, **run_options)
    close = text_progress(controller)
    try:
        return controller.run()
    finally:
        close()
