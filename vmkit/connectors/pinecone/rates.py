"""Pinecone's throughput limits, kept on our side of the wire; and a 429 that does not clear.

A serverless index answers 429 once a limit is passed (docs.pinecone.io, "Rate limits",
https://docs.pinecone.io/reference/api/database-limits/rate-limits, Data operation throughput
limits): per index, 100 fetch, 200 list and 100 describe_index_stats requests a second and
5,000 deleted records a second; per namespace, 100 upsert, delete and query requests a second,
50 MB of upserts a second and 5,000 deleted records a second. A 429 is retried, but a reader
that lists and fetches on several threads would spend much of its time backing off. So each
data-plane request first takes a permit from a sliding window per limit, shared by every
connector in the process that talks to the same index; an upsert takes as many as its body
has bytes (counted in KiB), a delete as many as it names ids.

Limits can be raised on request, and Dedicated Read Nodes have none for reads, so the URI
option ``rate_limits=fetch:300,list:400`` changes some of them and ``rate_limits=off`` turns
pacing off. Query read units (2,000 a second per index) are paced with the units the last
query of the same namespace cost, as its answer reports them (a query's cost grows with its
namespace); only the sample queries (pinecone_sample) query.

Some 429s never clear by retrying: a Starter plan's monthly read or write units (1,000,000
and 2,000,000; "Reaching a monthly usage limit returns a 429 - TOO_MANY_REQUESTS. Upgrade
your plan to continue.", same page), or a limit a concurrent client keeps full.
``Throttled`` counts the 429s of each operation in a row; once they pass both a number
(URI option ``max_429``, default 20 calls, each already retried by the SDK) and a time
(``max_429_s``, default 60 s; a per-second limit clears within seconds), the connector raises
SystemicRefusal naming the limit: the run stops resumably, nothing dead-lettered, instead of
retrying without end. A 429 whose text names a monthly unit limit stops after 3 calls in a
row (or ``max_429``, if lower) whatever the time: it cannot clear this month.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from vmkit.core.errors import ConfigError

# op -> (requests a second, whether the limit holds per namespace rather than per index)
DOCUMENTED: dict[str, tuple[int, bool]] = {
    "fetch": (100, False),
    "list": (200, False),
    "describe_index_stats": (100, False),
    "upsert": (100, True),
    "delete": (100, True),
    "query": (100, True),  # sampling a big index for its profile (pinecone_sample)
    "delete_records": (5000, True),  # weighed by the ids in each delete request
    "delete_records_index": (5000, False),  # the same, over all namespaces of the index
    "upsert_bytes": (50_000_000, True),  # weighed by the bytes of each upsert body
    "query_units": (2000, False),  # weighed by the read units of the namespace's last query
}
UNITS = {"upsert_bytes": 1024}  # bytes a permit stands for (the window holds one item a permit)

# The window is a fifth longer than the documented second: requests leave the process after
# uneven delays (thread switches, connection set-up, and full garbage collections, which stop
# every thread for 100 ms or more in a process with a large heap), and must still arrive
# within the limit. A tenth was not enough: CI saw a 429 behind such a pause.
_WINDOW_MS = 1200


def parse_limits(option: str | None) -> dict[str, int]:
    """The limit a second per op (requests; bytes, records or read units for the ops so named):
    the documented ones, changed by a ``rate_limits`` option."""
    limits = {op: n for op, (n, _) in DOCUMENTED.items()}
    if option is None:
        return limits
    if option.strip().lower() == "off":
        return {}
    for part in filter(None, (p.strip() for p in option.split(","))):
        op, _, value = part.partition(":")
        if op not in DOCUMENTED or not value.isdigit() or int(value) < 1:
            raise ConfigError(f"rate_limits takes op:N pairs (N a whole number a second: requests, "
                              f"or bytes, records or read units for the ops so named; op one of "
                              f"{', '.join(DOCUMENTED)}), or 'off'; got {part!r}")
        limits[op] = int(value)
    return limits


class Pacer:
    """Sliding-window permits for one index: ``wait`` returns once a request may leave."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], Any] = {}  # pyrate_limiter.Limiter each
        self.last_permit = float("-inf")  # time.monotonic() of the latest permit given

    def wait(self, op: str, namespace: str = "", weight: int = 1) -> None:
        per_second = self._limits.get(op)
        if per_second is None:
            return
        unit = UNITS.get(op, 1)
        per_second, weight = max(1, per_second // unit), math.ceil(weight / unit)
        key = (op, namespace if DOCUMENTED[op][1] else "")
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                from pyrate_limiter import Limiter, Rate  # the pinecone extra brings it

                window = self._windows[key] = Limiter(Rate(per_second, _WINDOW_MS))
        window.try_acquire(op, weight=min(weight, per_second))  # blocks until the window has room
        self.last_permit = time.monotonic()


_PACERS: dict[tuple[str, tuple[tuple[str, int], ...]], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def settle(*index: str) -> None:
    """Return once no request this process made to ``index`` (its host or name, as pacers are
    keyed) is still inside a limit's window.
    Before workers that each pace at their share take over an index, the coordinator's own
    requests (the plan's samples, a second before) must have left the window, or the two
    together pass the limit: the Dask test saw a 429 at the first chunks, with 5 of the
    workers' fetches and the planning's in the same second."""
    with _PACERS_LOCK:
        last = max((p.last_permit for (name, _), p in _PACERS.items() if name in index), default=float("-inf"))
    wait = last + _WINDOW_MS / 1000 - time.monotonic()
    if wait > 0:
        time.sleep(wait)


class Throttled:
    """429s in a row per operation (``upsert``, ``fetch``, ...), and whether they persist past
    the bound: at least ``answers`` of them over at least ``seconds``."""

    def __init__(self, answers: int, seconds: float) -> None:
        self.answers, self.seconds = answers, seconds
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[int, float]] = {}  # op -> (429s in a row, first one's time)

    def succeeded(self, op: str) -> None:
        if op in self._runs:
            with self._lock:
                self._runs.pop(op, None)

    def refused(self, op: str, monthly: bool = False) -> tuple[int, float] | None:
        """Count one more 429 of ``op``: (429s in a row, seconds since the first) once past the
        bound (for a ``monthly`` cap, 3 in a row at any time), else None."""
        now = time.monotonic()
        with self._lock:
            count, first = self._runs.get(op, (0, now))
            self._runs[op] = (count + 1, first)
        count += 1
        if (monthly and count >= min(3, self.answers)) or \
                (count >= self.answers and now - first >= self.seconds):
            return count, now - first
        return None


def is_monthly(message: str) -> bool:
    """Whether a 429's text names a monthly usage cap (read or write units; not the per-second
    query read units)."""
    return "month" in message.lower()


def limit_named(op: str, message: str) -> str:
    """The limit a 429 of ``op`` with the service's ``message`` stands for, in words."""
    text = message.lower()
    if is_monthly(message):
        kind = "read" if "read unit" in text else "write" if "write unit" in text else \
            ("write" if op in ("upsert", "delete") else "read")
        return (f"the project's monthly {kind} unit limit (Starter plans: 1,000,000 read and "
                "2,000,000 write units a month; it clears next month or once the plan is "
                "upgraded)")
    rates = {"upsert": "100 upsert requests and 50 MB a second per namespace",
             "delete": "100 delete requests and 5,000 deleted records a second per namespace "
                       "and 5,000 per index",
             "query": "100 query requests a second per namespace and 2,000 read units a "
                      "second per index",
             "fetch": "100 fetch requests a second per index",
             "list": "200 list requests a second per index",
             "describe_index_stats": "100 describe_index_stats requests a second per index"}
    return (f"Pinecone's {op} rate limit ({rates.get(op, 'a per-second limit')}, or a raised "
            "one), kept full by another client of the index")


def pacer_for(index: str, limits: dict[str, int]) -> Pacer:
    """The process's pacer for ``index`` (its host or name) under ``limits``: connectors to the
    same index share one, so a verification beside a running migration does not double the
    rate the index sees."""
    key = (index, tuple(sorted(limits.items())))
    with _PACERS_LOCK:
        if key not in _PACERS:
            _PACERS[key] = Pacer(limits)
        return _PACERS[key]
