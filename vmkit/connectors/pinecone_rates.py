"""Pinecone's request-per-second limits, kept on our side of the wire.

A serverless index answers 429 once a limit is passed (docs.pinecone.io, "Rate limits"): per
index, 100 fetch, 200 list and 100 describe_index_stats requests a second; per namespace, 100
upsert, delete and query requests a second, and 5,000 deleted records a second. A 429 is
retried, but a reader that lists and fetches on several threads would spend much of its time
backing off. So each data-plane request first takes a permit from a sliding window per
limit, shared by every connector in the process that talks to the same index.

Limits can be raised on request, and Dedicated Read Nodes have none for reads, so the URI
option ``rate_limits=fetch:300,list:400`` changes some of them and ``rate_limits=off`` turns
pacing off.
"""

from __future__ import annotations

import threading
from typing import Any

from vmkit.errors import ConfigError

# op -> (requests a second, whether the limit holds per namespace rather than per index)
DOCUMENTED: dict[str, tuple[int, bool]] = {
    "fetch": (100, False),
    "list": (200, False),
    "describe_index_stats": (100, False),
    "upsert": (100, True),
    "delete": (100, True),
    "query": (100, True),  # sampling a big index for its profile (pinecone_sample)
    "delete_records": (5000, True),  # weighed by the ids in each delete request
}

# The window is a fifth longer than the documented second: requests leave the process after
# uneven delays (thread switches, connection set-up, and full garbage collections, which stop
# every thread for 100 ms or more in a process with a large heap), and must still arrive
# within the limit. A tenth was not enough: CI saw a 429 behind such a pause.
_WINDOW_MS = 1200


def parse_limits(option: str | None) -> dict[str, int]:
    """The requests a second per op: the documented ones, changed by a ``rate_limits`` option."""
    limits = {op: n for op, (n, _) in DOCUMENTED.items()}
    if option is None:
        return limits
    if option.strip().lower() == "off":
        return {}
    for part in filter(None, (p.strip() for p in option.split(","))):
        op, _, value = part.partition(":")
        if op not in DOCUMENTED or not value.isdigit() or int(value) < 1:
            raise ConfigError(f"rate_limits takes op:N pairs (N a whole number of requests a second, "
                              f"op one of {', '.join(DOCUMENTED)}), or 'off'; got {part!r}")
        limits[op] = int(value)
    return limits


class Pacer:
    """Sliding-window permits for one index: ``wait`` returns once a request may leave."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], Any] = {}  # pyrate_limiter.Limiter each

    def wait(self, op: str, namespace: str = "", weight: int = 1) -> None:
        per_second = self._limits.get(op)
        if per_second is None:
            return
        key = (op, namespace if DOCUMENTED[op][1] else "")
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                from pyrate_limiter import Limiter, Rate  # the pinecone extra brings it

                window = self._windows[key] = Limiter(Rate(per_second, _WINDOW_MS))
        window.try_acquire(op, weight=min(weight, per_second))  # blocks until the window has room


_PACERS: dict[tuple[str, tuple[tuple[str, int], ...]], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(index: str, limits: dict[str, int]) -> Pacer:
    """The process's pacer for ``index`` (its host or name) under ``limits``: connectors to the
    same index share one, so a verification beside a running migration does not double the
    rate the index sees."""
    key = (index, tuple(sorted(limits.items())))
    with _PACERS_LOCK:
        if key not in _PACERS:
            _PACERS[key] = Pacer(limits)
        return _PACERS[key]
