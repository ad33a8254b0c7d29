"""MigrationController: drive ``Migration.run`` from a worker thread, with pause/resume/stop
and rollback. A plain object (no widgets): the notebook panel, the CLI and tests use the same
calls.

Pause holds the batch loop before its next batch (``Migration.pause()``) with the connections
and the lease kept, so ``resume()`` continues at once; time paused is not copying time. Stop
goes through ``Migration.stop()``: the run ends after the batch in flight, stays
``in_progress`` and resumable (``start()``). An exception in the worker is kept in ``error``,
logged and sent to listeners: it is never lost with the thread.

Phases (controller-side, not migration states); the runner reports the ones it goes through::

    idle -> connecting -> [planning] -> copying <-> validating -> verifying -> completed
                                        copying -> pausing -> paused -> copying ...
                                        any active -> stopping -> stopped
                            -> rolling_back -> rolled_back | unverified | failed
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmkit.core.errors import StateError
from vmkit.migration.runner import Migration, Progress
from vmkit.migration.status import Status
from vmkit.notebook import background
from vmkit.notebook.meter import Meter, text_progress  # noqa: F401 - text_progress: also from here

log = logging.getLogger("vmkit.notebook.controller")

RUNNING = frozenset({"connecting", "planning", "copying", "validating", "verifying"})
ACTIVE = RUNNING | {"pausing", "paused", "stopping", "rolling_back"}
COPYING = frozenset({"copying", "validating"})  # phases with a meaningful rate and ETA


@dataclass(frozen=True)
class Update:
    """What a listener receives: after every batch ("progress") and on phase changes."""

    kind: str  # "progress" | "phase" | "error"
    phase: str
    progress: Progress | None
    error: BaseException | None = None


Listener = Callable[[Update], None]


class MigrationController:
    def __init__(self, migration: Migration, *, max_batches: int | None = None, **run_options: Any) -> None:
        self.migration = migration
        self.max_batches = max_batches
        self.run_options = run_options  # Migration.run's executor, cluster, workers (Dask)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified on every phase change
        self._thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._phase = "idle"
        self._phase_at = time.monotonic()
        self._progress: Progress | None = None
        self._error: BaseException | None = None
        self._requested: str | None = None  # "pause" | "stop" while a run is active
        self._resent = False
        self._base_read = 0  # records_read when this session began (rate and ETA)
        self.verifying: tuple[str, int] | None = None  # full verification: (what, records read)

    # -- read side ---------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self._phase

    @property
    def phase_seconds(self) -> float:
        """How long the current phase has lasted (a long verification shows it is alive)."""
        return time.monotonic() - self._phase_at

    @property
    def progress(self) -> Progress | None:
        """The latest Progress the batch loop reported (None before the first batch)."""
        return self._progress

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last run, if any."""
        return self._error

    @property
    def running(self) -> bool:
        return self._phase in ACTIVE

    def status(self) -> Status:
        return self.migration.status()

    def meter(self) -> Meter:
        st = self.migration.status()
        p = self._progress
        elapsed = p.seconds if p is not None else 0.0
        done_here = st.records_read - self._base_read
        rate = (done_here / elapsed if p is not None and elapsed > 0 and done_here > 0
                and self._phase in COPYING else None)
        left = max(st.expected_records - st.records_read, 0)
        eta = left / rate if rate else None
        return Meter(st.records_read, st.expected_records, elapsed, rate, eta)

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(update)`` on every update; returns a function that removes it."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run (or continue) the migration in a worker thread; returns at once."""
        with self._lock:
            self._check_idle("start")
            old = self._thread
            if old is not None and old is not threading.current_thread():
                old.join()  # it has set its final phase; let it finish closing
            self._begin()
            # Tracked by ``background``: at exit it gets a few seconds to finish drawing its end.
            self._thread = background.start(self._work, f"vmkit-{self.migration.id}")

    def run(self) -> Status:
        """The same loop, synchronously in the calling thread (headless runs, the CLI).
        An exception is recorded like in the thread, then re-raised."""
        with self._lock:
            self._check_idle("run")
            self._begin()
        self._work()
        if self._error is not None:
            raise self._error
        return self.migration.status()

    def pause(self) -> None:
        """Hold before the next batch, connections open; ``resume()`` continues at once."""
        with self._lock:
            if self._phase not in RUNNING or self._phase == "verifying":
                return
            self._requested = "pause"
            self._set_phase("pausing")
        self.migration.pause()

    def stop(self) -> None:
        """Stop after the batch in flight (or the pause); the migration stays resumable
        (``start()``)."""
        self._request("stop", "stopping")

    def resume(self) -> None:
        with self._lock:
            if self._phase not in ("paused", "pausing"):
                raise StateError(f"migration '{self.migration.id}' is {self._phase}, not paused")
            self._requested = None
            self._set_phase("copying")
        self.migration.resume()

    def rollback(self, drop_target: bool = False) -> Status:
        """Stop (waiting for the batch in flight), then roll back. Blocks for at most one batch."""
        if self._thread is threading.current_thread():
            raise StateError("rollback() cannot be called from a listener (the worker thread)")
        if self.running:
            self._request("stop", "stopping")
        self.join()
        self._set_phase("rolling_back")
        try:
            status = self.migration.rollback(drop_target=drop_target)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._set_phase("rolled_back")
        return status

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True once it has finished (or there is none)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def wait_phase(self, *phases: str, timeout: float | None = None) -> bool:
        """Block until the phase is one of ``phases``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._phase in phases, timeout)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    # -- internals ---------------------------------------------------------------------------
    def _check_idle(self, what: str) -> None:
        if self.running:
            raise StateError(f"migration '{self.migration.id}' is already running here;"
                             f" cannot {what}")

    def _begin(self) -> None:
        self._requested, self._resent, self._error, self._progress = None, False, None, None
        self._base_read = self.migration.store.get(self.migration.id).records_read
        self.migration.resume()  # a pause belongs to the run it was asked in
        self.migration.on_phase = self._on_phase
        self.migration.on_verify = self._on_verify
        self.verifying = None
        self._set_phase("connecting")

    def _request(self, what: str, phase: str) -> None:
        with self._lock:
            if not self.running:
                return
            self._requested = what
            self._set_phase(phase)
        self.migration.stop()

    def _work(self) -> None:
        try:
            status = self.migration.run(max_batches=self.max_batches, on_batch=self._on_batch, **self.run_options)
        except BaseException as exc:  # kept for the caller: a thread must not swallow it
            log.exception("migration %s failed", self.migration.id)
            self._fail(exc)
            return
        self._set_phase(self._final_phase(status))

    def _on_phase(self, phase: str) -> None:
        """The runner's own phases; a pause or stop asked for stays shown until it happens."""
        with self._lock:
            if self._requested == "pause" and phase == "verifying":
                self._requested = None  # the scan ended before the pause could hold it
            if self._requested == "stop" or (self._requested == "pause" and phase != "paused"):
                return
            self._set_phase(phase)

    def _on_verify(self, what: str, records: int) -> None:
        self.verifying = (what, records)
        self._emit(Update("progress", self._phase, self._progress))

    def _on_batch(self, progress: Progress) -> None:
        self._progress = progress
        if self._requested == "stop" and not self._resent:
            # run() clears the stop flag when it starts: a pause that came before that
            # must be sent again, or it would be lost.
            self._resent = True
            self.migration.stop()
        self._emit(Update("progress", self._phase, progress))

    def _final_phase(self, status: Status) -> str:
        if status.state in ("completed", "rolled_back"):
            return status.state
        if status.scan_done and status.verification == "failed":
            return "unverified"
        return "stopped"

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        try:
            state = self.migration.status().state
        except Exception:  # noqa: BLE001 - the state store itself may be the failure
            state = ""
        with self._changed:
            self._phase = "rolled_back" if state == "rolled_back" else "failed"
            self._changed.notify_all()
        self._emit(Update("error", self._phase, self._progress, exc))

    def _set_phase(self, phase: str) -> None:
        if phase != self._phase:
            with self._changed:
                self._phase, self._phase_at = phase, time.monotonic()
                self._changed.notify_all()
            log.debug("migration %s: %s", self.migration.id, phase)
            self._emit(Update("phase", phase, self._progress))

    def _emit(self, update: Update) -> None:
        for fn in list(self._listeners):
            try:
                fn(update)
            except Exception:
                log.exception("progress listener %r failed", fn)
