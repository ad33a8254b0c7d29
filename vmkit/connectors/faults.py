"""Seeded fault injection for the memory:// connector: transient, terminal, hanging and
reset calls, exact scripted exceptions, latency. One roll per call, in the order terminal,
transient, hang, reset, so adding a new kind never changes the sequence of the others."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field

from vmkit.core.errors import TerminalError, TransientError


@dataclass
class Faults:
    fail_rate: float = 0.0
    terminal_rate: float = 0.0
    latency_s: float = 0.0
    ops: frozenset[str] = frozenset({"upsert"})
    rng: random.Random = field(default_factory=random.Random)
    invalid_field: str = ""
    corrupt_rate: float = 0.0
    injected: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    retry_after: float | None = None
    hang_rate: float = 0.0
    hang_s: float = 0.0
    reset_rate: float = 0.0
    invalid_partial: bool = False
    sleeps: list[float] = field(default_factory=list)  # hangs served (seconds)
    lag_s: float = 0.0  # read-after-write lag (memory:// lag_ms): writes show this much later
    _script: deque = field(default_factory=deque, repr=False)

    def inject(self, exc: BaseException, times: int = 1, op: str | None = None,
               after_effect: bool = False) -> None:
        """Raise ``exc`` on the next ``times`` calls (of ``op``, if given), before the call
        does anything, or after its effect with ``after_effect`` (a lost acknowledgement)."""
        for _ in range(times):
            self._script.append((exc, op, after_effect))

    def clear(self) -> None:
        """No more faults (counters are kept)."""
        self.fail_rate = self.terminal_rate = self.hang_rate = self.reset_rate = 0.0
        self.corrupt_rate, self.invalid_field, self.retry_after = 0.0, "", None
        self._script.clear()

    def maybe_fail(self, op: str) -> BaseException | None:
        """Raise the fault due before ``op`` runs, or return the one due after its effect."""
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.latency_s:
            time.sleep(self.latency_s)
        for i, (exc, only, after) in enumerate(self._script):
            if only is None or only == op:
                del self._script[i]
                self.injected += 1
                if after:
                    return exc
                raise exc
        if op not in self.ops:
            return None
        roll = self.rng.random()
        if roll < self.terminal_rate:
            self.injected += 1
            raise TerminalError(f"injected terminal failure in {op}")
        edge = self.terminal_rate + self.fail_rate
        if roll < edge:
            self.injected += 1
            raise TransientError(f"injected transient failure in {op}", retry_after=self.retry_after)
        if roll < edge + self.hang_rate:
            self.injected += 1
            self.sleeps.append(self.hang_s)
            time.sleep(self.hang_s)
            raise TransientError(f"injected: {op} timed out after {self.hang_s * 1000:.0f} ms")
        if roll < edge + self.hang_rate + self.reset_rate:
            self.injected += 1
            return TransientError(f"injected: connection reset by peer during {op} (effect applied)")
        return None


def raise_due(exc: BaseException | None) -> None:
    """Raise a fault returned by ``Faults.maybe_fail`` (one due after the call's effect)."""
    if exc is not None:
        raise exc
