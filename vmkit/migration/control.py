"""Steering a run from outside its loop: stop (this process or another, through the state
store), pause and resume (this process: the loop holds before its next batch with the
connections and the lease kept), the phases a view shows, and SIGINT/SIGTERM as a stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable

from vmkit.state.store import StateStore

log = logging.getLogger("vmkit.migration.runner")


class RunControl:
    """Mixed into Migration, which sets the fields below."""

    store: StateStore
    id: str
    _stop: threading.Event
    _paused: threading.Event
    on_phase: Callable[[str], None] | None

    def stop(self) -> None:
        """Ask the runner (in this or another process) to stop after the batch in flight."""
        self._stop.set()
        self.store.set_flag(self.id, "stop_requested", True)

    def pause(self) -> None:
        """Hold the run (of this process) before its next batch, keeping the connections and
        the lease, until ``resume()`` or ``stop()``. Time held is not counted as copying time."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _phase(self, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(name)

    def _hold_while_paused(self, lease: str) -> float:
        """Wait while paused (the lease renewed); the seconds held."""
        if not self._paused.is_set():
            return 0.0
        t0 = renewed = time.monotonic()
        log.info("migration %s paused; connections kept open", self.id)
        self._phase("paused")
        while self._paused.is_set() and not self._should_stop():
            self._stop.wait(0.2)
            if time.monotonic() - renewed > 10:
                self.store.renew_lease(self.id, lease)
                renewed = time.monotonic()
        if not self._should_stop():
            log.info("migration %s resumed", self.id)
            self._phase("copying")
        return time.monotonic() - t0

    def _should_stop(self) -> bool:
        return self._stop.is_set() or self.store.get(self.id).stop_requested


def trap_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM finish the batch in flight, checkpoint and return (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: Any) -> None:
        log.warning("%s received: finishing the batch in flight, then stopping",
                    signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore
