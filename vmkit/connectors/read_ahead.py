"""Reads started before their turn, for the scans that keep several streams going
(pinecone_scan, weaviate_scan). Each read is keyed by where it starts, so a turn takes the read
made for it, whatever cursor it was given; without one it reads inline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ReadAhead(Generic[K, V]):
    """Up to ``threads`` reads under way at once, started in a pool made on first use."""

    def __init__(self, threads: int, name: str) -> None:
        self._threads, self._name = threads, name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[K, Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._ahead

    def start(self, key: K, read: Callable[[], V]) -> None:
        """Start ``read`` in a thread, unless a read for ``key`` is under way already."""
        if key not in self._ahead:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
                pool = self._pool
            self._ahead[key] = pool.submit(read)

    def take(self, key: K, read: Callable[[], V]) -> V:
        """The read started for ``key`` (a failed one raises here, as reading inline would),
        or ``read()`` inline."""
        future = self._ahead.pop(key, None)
        return future.result() if future is not None else read()

    def keep_only(self, keys: set[K]) -> None:
        """Drop the reads no turn will take (another cursor was given)."""
        for key in [k for k in self._ahead if k not in keys]:
            self._ahead.pop(key).cancel()

    def close(self) -> None:
        """Stop the threads, letting the reads under way finish."""
        with self._lock:
            pool, self._pool, self._ahead = self._pool, None, {}
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
