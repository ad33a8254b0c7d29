"""The throughput limits a serverless Pinecone index enforces (docs.pinecone.io, "Rate limits",
Data operation throughput limits), for the emulator: a sliding one-second window per limit,
counted when a request arrives. A request past a limit is answered 429 and not counted.
Besides requests a second: upsert bytes a second per namespace (50 MB), deleted records a
second per namespace and per index (5,000 each), query read units a second per index (2,000;
a query here costs ``QUERY_READ_UNITS``)."""

from __future__ import annotations

import threading
import time
from collections import deque

from emulators.pinecone_store import QUERY_READ_UNITS, ApiFailure

# op -> (requests a second, per namespace rather than per index). "delete_records" counts the
# ids of each delete request.
DOCUMENTED: dict[str, tuple[int, bool]] = {
    "fetch": (100, False), "list": (200, False), "stats": (100, False),
    "upsert": (100, True), "delete": (100, True), "query": (100, True),
    "delete_records": (5000, True), "delete_records_index": (5000, False),
    "upsert_bytes": (50_000_000, True), "query_units": (2000, False),
}


class RateLimits:
    """``limits`` (op -> per second; the documented ones by default, ``{}`` for none) can be
    changed while the emulator runs."""

    def __init__(self) -> None:
        self.limits = {op: n for op, (n, _) in DOCUMENTED.items()}
        self.refused = 0  # requests answered 429 for a limit so far
        self._lock = threading.Lock()
        self._arrivals: dict[tuple[str, str, str], deque[tuple[float, int]]] = {}

    def admit(self, index: str, op: str, namespace: str, records: int, nbytes: int = 0) -> None:
        checks = [(op, 1)]
        if op == "delete":
            checks += [("delete_records", records), ("delete_records_index", records)]
        elif op == "upsert":
            checks.append(("upsert_bytes", nbytes))
        elif op == "query":
            checks.append(("query_units", QUERY_READ_UNITS))
        now = time.monotonic()
        with self._lock:
            windows = []
            for name, weight in checks:
                limit = self.limits.get(name)
                if limit is None:
                    continue
                scope = namespace if DOCUMENTED[name][1] else ""
                window = self._arrivals.setdefault((index, name, scope), deque())
                while window and window[0][0] <= now - 1.0:
                    window.popleft()
                if sum(w for _, w in window) + weight > limit:
                    self.refused += 1
                    where = f"namespace {scope!r}" if DOCUMENTED[name][1] else f"index {index!r}"
                    raise ApiFailure(429, f"Request failed. You've reached the max {name} rate "
                                     f"of {limit} per second for {where}. Retry with backoff.",
                                     "RESOURCE_EXHAUSTED")
                windows.append((window, weight))
            for window, weight in windows:
                window.append((now, weight))
