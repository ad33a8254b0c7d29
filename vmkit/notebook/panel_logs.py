"""The run's log lines in its panel, and out of the last cell.

ipykernel prints a worker thread's output under whichever cell ran last, so a root handler
(``logging.basicConfig``) would scatter the background run's lines there. While a panel shows
them, records logged by vmkit from the run's threads (named ``vmkit-*``) go to that panel's
Output instead, one line each; the kernel's own lines stay where they were.
"""

from __future__ import annotations

import logging
from typing import Any

_SHOWING: set[int] = set()  # ids of the panels whose log handler is attached right now


def _from_run_thread(record: logging.LogRecord) -> bool:
    return record.name.startswith("vmkit") and (record.threadName or "").startswith("vmkit-")


class RunLogHandler(logging.Handler):
    """INFO and above of the run's threads, into the panel's Output: one line each, the
    traceback left out (the controller keeps the exception: ``panel.traceback()``)."""

    def __init__(self, out: Any) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.addFilter(_from_run_thread)

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append_stdout(f"{record.levelname} {record.name}: {record.getMessage()}\n")


def _not_from_run_thread(record: logging.LogRecord) -> bool:
    return not (_SHOWING and _from_run_thread(record))  # while no panel shows them: unchanged


def _keep_run_logs_out_of_root() -> None:
    """Root handlers (``logging.basicConfig``) would print a run thread's lines under the last
    cell run: the panel shows them instead."""
    for handler in logging.getLogger().handlers:
        if _not_from_run_thread not in handler.filters:
            handler.addFilter(_not_from_run_thread)


def show_run_logs(panel_id: int, handler: logging.Handler, on: bool) -> None:
    """Attach (or detach) a panel's handler on the ``vmkit`` logger."""
    if on:
        _keep_run_logs_out_of_root()
        _SHOWING.add(panel_id)
        logging.getLogger("vmkit").addHandler(handler)
    else:
        logging.getLogger("vmkit").removeHandler(handler)
        _SHOWING.discard(panel_id)
