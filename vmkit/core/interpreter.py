"""Interpreter settings for the length of a run: a thread back from the network gets the GIL
sooner, and garbage collection walks fewer objects less often.

A migration is threads that mostly wait (listings, fetches, writes) beside a few that compute
(mapping, validation, an embedded target engine). CPython hands the GIL to a waiting thread
only after the running one has had it for the switch interval, 5 ms by default, so a reply
that lands while another thread computes waits up to that long, on every round trip of a chain
that cannot run ahead (a Pinecone namespace's list pages): measured +2.7 ms a 22 ms page
against +0.4-1.4 ms at 0.5 ms. And a full collection walks every tracked object, the SDKs'
and the notebook's included (about 200,000 before a run, 100 ms a collection); freezing them
leaves only the run's own objects to walk (10 ms). The youngest generation is collected every
10,000 new containers instead of 700: the SDKs and the embedded engines build many short-lived
ones (a 10,000-record Pinecone-to-Qdrant run: 290 collections, 150 ms, became 11, 80 ms).

All three are process-wide: they are made when the first run in the process begins and
put back when the last one ends. A switch interval already shorter, a threshold already
higher, or objects someone else froze, are left as they are.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SWITCH_INTERVAL_S = 0.0005
YOUNG_THRESHOLD = 10_000  # new containers between collections of the youngest generation


@dataclass
class _Saved:
    switch_interval: float  # what to put back
    ours: float  # what we set, as the interpreter reads it back
    thresholds: tuple[int, int, int]  # what to put back
    our_thresholds: tuple[int, int, int]
    froze: bool


_lock = threading.Lock()
_depth = 0
_saved: _Saved | None = None


@contextmanager
def tuned_for_io(enabled: bool = True) -> Iterator[None]:
    """Runs the block with the settings above (nothing changes when not ``enabled``)."""
    if not enabled:
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        before = sys.getswitchinterval()
        if before > SWITCH_INTERVAL_S:  # never set it back to itself: it is kept in whole
            sys.setswitchinterval(SWITCH_INTERVAL_S)  # microseconds, and can read back 1 less
        thresholds = gc.get_threshold()
        young, *older = thresholds
        if young:  # 0 means the user turned automatic collection off
            gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)
        froze = gc.isenabled() and gc.get_freeze_count() == 0
        if froze:
            gc.freeze()
        _saved = _Saved(before, sys.getswitchinterval(), thresholds, gc.get_threshold(), froze)


def _leave() -> None:
    global _depth, _saved
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved is None:
            return
        if _saved.switch_interval != _saved.ours == sys.getswitchinterval():  # ours, still
            sys.setswitchinterval(_saved.switch_interval)
        if gc.get_threshold() == _saved.our_thresholds:
            gc.set_threshold(*_saved.thresholds)
        if _saved.froze:
            gc.unfreeze()
        _saved = None
