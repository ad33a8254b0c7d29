"""MigrationPanel: an ipywidgets view over MigrationController (ipywidgets imported lazily).

The batch loop runs in the controller's worker thread, so the kernel stays free and the
buttons stay live. Widget updates come from that thread; text goes to the panel's Output with
``append_stdout`` (ipykernel 7 no longer routes a thread's output to a cell by itself). Where
widgets do not render (saved notebooks, terminals) the panel's text form is a text meter and
the status, like ``tqdm.notebook``.

``run_migration(migration, interactive=...)`` is what notebooks call: a live panel when
interactive, otherwise the same controller synchronously in the cell with a tqdm text bar.
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
from vmkit.notebook.controller import ACTIVE, MigrationController, Update, text_progress

log = logging.getLogger("vmkit.notebook.widgets")

BUTTONS = ("Start", "Pause", "Resume", "Stop", "Rollback")
_BAR_STYLE = {"completed": "success", "paused": "warning", "stopped": "warning",
              "failed": "danger", "rolled_back": "danger", "unverified": "danger"}
_REFRESH_S = 0.25  # progress redraws at most this often; phase changes always redraw


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise MissingDependency("ipywidgets", "notebook") from None
    return ipywidgets


class _OutputHandler(logging.Handler):
    """vmkit warnings raised in the worker thread, into the panel's Output."""

    def __init__(self, out: Any) -> None:
        super().__init__(logging.WARNING)
        self.out = out
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append_stdout(self.format(record) + "\n")


class MigrationPanel:
    """Progress bar (records/s, ETA), Start/Pause/Resume/Stop/Rollback, live validation
    statistics and the latest errors, for one migration."""

    def __init__(self, migration: Migration, *, max_batches: int | None = None,
                 controller: MigrationController | None = None) -> None:
        w = _ipywidgets()
        self.migration = migration
        self.controller = controller or MigrationController(migration, max_batches=max_batches)
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="60%"))
        self.meter = w.HTML()
        self.state = w.HTML()
        self.buttons = {name: w.Button(description=name) for name in BUTTONS}
        self.drop_target = w.Checkbox(value=False, description="drop target on rollback",
                                      indent=False)
        self.validation = w.HTML()
        self.errors = w.HTML()
        self.sync = w.HTML()  # lag, phase and passes of a vmkit.sync migration
        self.log = w.Output(layout=w.Layout(max_height="12em", overflow="auto"))
        self.box = w.VBox([
            self.state, w.HBox([self.bar, self.meter]),
            w.HBox([*self.buttons.values(), self.drop_target]),
            self.validation, self.sync, self.errors, self.log,
        ])
        self.box.add_class("vmkit-panel")  # what a browser test (and user CSS) finds it by
        actions = {"Start": self.controller.start, "Pause": self.controller.pause,
                   "Resume": self.controller.resume, "Stop": self.controller.stop,
                   "Rollback": self._rollback}
        for name, action in actions.items():
            self.buttons[name].on_click(self._clicked(name, action))
        self._handler = _OutputHandler(self.log)
        self._last_draw, self._force = 0.0, False
        self.controller.add_listener(self._on_update)
        self.refresh()

    # -- actions -----------------------------------------------------------------------------
    def start(self) -> None:
        self.buttons["Start"].click()

    def _clicked(self, name: str, action: Any) -> Any:
        def handler(_button: Any) -> None:
            try:
                if name in ("Start", "Resume", "Rollback"):
                    logging.getLogger("vmkit").addHandler(self._handler)
                action()
            except Exception as exc:  # noqa: BLE001 - a click has no caller to raise to
                self.log.append_stdout(f"{name} failed: {type(exc).__name__}: {exc}\n")
            self.refresh()
        return handler

    def _rollback(self) -> None:
        # Waiting for the batch in flight would block the kernel: do it beside the cell.
        def work() -> None:
            try:
                self.controller.rollback(drop_target=self.drop_target.value)
            except Exception as exc:  # noqa: BLE001 - recorded and shown by the controller already
                log.debug("rollback of %s failed: %s", self.migration.id, exc)
        name = f"vmkit-rollback-{self.migration.id}"
        threading.Thread(target=work, name=name, daemon=True).start()

    # -- updates from the worker -------------------------------------------------------------
    def _on_update(self, update: Update) -> None:
        now = time.monotonic()
        if update.kind == "progress" and not self._force and now - self._last_draw < _REFRESH_S:
            return
        # The first batch after a phase change always redraws: the migration state (and so
        # which buttons apply) may have changed with it.
        self._last_draw, self._force = now, update.kind != "progress"
        if update.kind == "error" and update.error is not None:
            self.log.append_stdout(f"error: {type(update.error).__name__}: {update.error}\n")
        if update.kind != "progress":
            self.log.append_stdout(f"{self.migration.id}: {update.phase}\n")
            if update.phase not in ACTIVE:
                logging.getLogger("vmkit").removeHandler(self._handler)
        self.refresh()

    def refresh(self) -> None:
        """Redraw every widget from the controller and the state store."""
        ctl, status = self.controller, self.migration.status()
        meter = ctl.meter()
        self.bar.value = min(meter.done / meter.total, 1.0) if meter.total else 0.0
        self.bar.bar_style = _BAR_STYLE.get(ctl.phase, "")
        rate = f"{meter.rate:,.0f} rec/s" if meter.rate else "- rec/s"
        eta = f"ETA {meter.eta_s:,.0f} s" if meter.eta_s is not None else "ETA -"
        self.meter.value = html.escape(f"{meter.done:,}/{meter.total:,} rec · {rate} · {eta}")
        self.state.value = (f"<b>{html.escape(status.id)}</b>: {html.escape(status.state)}"
                            f" · panel: {html.escape(ctl.phase)}")
        self.validation.value = html.escape(_validation_line(status))
        errors = _error_lines(status, ctl.error)
        self.errors.value = "<br>".join(html.escape(e) for e in errors) or "no errors"
        if status.sync:
            from vmkit.state.journal import SyncStatus

            self.sync.value = SyncStatus(**status.sync)._repr_html_()
        enabled = _enabled(ctl.phase, status.state) if not status.sync else set()  # driven by vmkit.sync
        for name, button in self.buttons.items():
            button.disabled = name not in enabled

    # -- text form ---------------------------------------------------------------------------
    def __str__(self) -> str:
        ctl = self.controller
        head = f"[{ctl.phase}] {ctl.meter().text()}"
        lines = [head, *self.migration.status().lines()]
        if ctl.error is not None:
            lines.append(f"  last error: {type(ctl.error).__name__}: {ctl.error}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = str(self)
        return bundle


def _enabled(phase: str, state: str) -> set[str]:
    if state in ("completed", "rolled_back"):
        return set()
    on = {"idle": {"Start"}, "stopped": {"Start"}, "failed": {"Start"}, "unverified": {"Start"},
          "running": {"Pause", "Stop"}, "paused": {"Resume", "Stop"}}.get(phase, set())
    if phase not in ("pausing", "stopping", "rolling_back") and state == "in_progress":
        on = on | {"Rollback"}
    return on


def _validation_line(status: Status) -> str:
    v = status.validation
    parts = [f"sampled validation: {v.get('batches') or 0} batches, {v.get('records') or 0} records"]
    if v.get("mean_cos") is not None:
        parts += [f"mean cosine {v['mean_cos']:.4f}", f"min cosine {v['min_cos']:.4f}"]
    parts += [f"failures {v.get('failures') or 0}", f"rejected records {status.records_rejected}"]
    if status.verification:
        parts.append(f"full verification {status.verification}")
    return " · ".join(parts)


def _error_lines(status: Status, error: BaseException | None) -> list[str]:
    lines = [f"error: {type(error).__name__}: {error}"] if error is not None else []
    return lines + [f"latest: {e}" for e in dict.fromkeys(status.last_errors)]  # deduplicated


def run_migration(migration: Migration, *, interactive: bool = True,
                  max_batches: int | None = None) -> MigrationPanel | Status:
    """Interactive: a started MigrationPanel (show it as the cell's value). Headless: run in
    this cell with a text bar and return the final Status; no thread outlives the cell."""
    if interactive:
        panel = MigrationPanel(migration, max_batches=max_batches)
        panel.start()
        return panel
    controller = MigrationController(migration, max_batches=max_batches)
    close = text_progress(controller)
    try:
        return controller.run()
    finally:
        close()
