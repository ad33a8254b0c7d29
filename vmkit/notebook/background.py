"""Threads a panel starts beside the kernel (live redraws, watching, a rollback), ended before
the interpreter exits.

They are daemon threads so that a cell never waits on them; but a daemon thread still inside C++
code (matplotlib's Agg text layout) when the interpreter tears down aborts the whole process
("terminate called without an active exception"). At exit, ``closing`` is set, so loops stop at
their next turn, and each thread gets a few seconds to finish what it is drawing.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Callable

closing = threading.Event()
_LIVE: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()
_EXIT_WAIT_S = 10.0


def start(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    _LIVE.add(thread)
    thread.start()
    return thread


@atexit.register
def _finish() -> None:
    closing.set()
    deadline = time.monotonic() + _EXIT_WAIT_S
    for thread in list(_LIVE):
        thread.join(max(0.0, deadline - time.monotonic()))
