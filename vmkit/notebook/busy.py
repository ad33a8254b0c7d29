"""A long step started from a cell (planning a big source, a dry run, profiling a sample)
shows that it is alive: ``with working("planning"):`` puts "planning · 12 s" under the cell,
updated every half second from a background thread, and "planning: done in 14.2 s" (or
"failed after ...") at the end. It uses a display handle (plain text), so a headless papermill
run keeps the final line in the executed notebook; outside IPython it only logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vmkit.notebook import background

log = logging.getLogger("vmkit.notebook.busy")


def _handle(text: str) -> Any:
    """A display handle under the running cell, or None outside an IPython kernel."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return display({"text/plain": text}, raw=True, display_id=True)


@contextmanager
def working(what: str, every_s: float = 0.5) -> Iterator[None]:
    t0 = time.monotonic()
    handle = _handle(f"{what} …")
    done = threading.Event()
    if handle is not None:
        def tick() -> None:
            while not done.wait(every_s):
                handle.update({"text/plain": f"{what} · {time.monotonic() - t0:,.0f} s"}, raw=True)

        ticker = background.start(tick, f"vmkit-busy-{what}")
    log.info("%s ...", what)
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        done.set()
        if handle is not None:
            ticker.join()
        line = f"{what}: {outcome} {time.monotonic() - t0:,.1f} s"
        log.info("%s", line)
        if handle is not None:
            handle.update({"text/plain": line}, raw=True)
