"""Pieces every embedded-engine connector needs: the lazy SDK import, and one open handle per
directory shared by all connectors of this process (embedded engines lock their directory, so
a second open of the same one fails)."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import threading
from typing import Any, Callable, Generic, TypeVar

from vmkit.core.errors import MissingDependency

T = TypeVar("T")


def import_sdk(module: str, package: str, extra: str) -> Any:
    """Import a database SDK when first needed; say which vmkit extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(package, extra) from None


class SharedHandles(Generic[T]):
    """Handles counted by key; the last ``release`` closes one, and so does interpreter exit
    (engines' own finalizers fail that late). Keys in ``keep`` are never closed before exit."""

    def __init__(self, close: Callable[[T], None], keep: frozenset[str] = frozenset()) -> None:
        self._close, self._keep = close, keep
        self._handles: dict[str, list[Any]] = {}  # key -> [handle, refs]
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def acquire(self, key: str, open_: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._handles:
                self._handles[key] = [open_(), 0]
            entry = self._handles[key]
            entry[1] += 1
            return entry[0]  # type: ignore[no-any-return]

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._handles.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0 and key not in self._keep:
                del self._handles[key]
                with contextlib.suppress(Exception):
                    self._close(entry[0])

    def refs(self, key: str) -> int:
        """How many connectors hold the handle for ``key`` (0 when none is open)."""
        entry = self._handles.get(key)
        return 0 if entry is None else int(entry[1])

    def __contains__(self, key: str) -> bool:
        return key in self._handles

    def __getitem__(self, key: str) -> T:
        return self._handles[key][0]  # type: ignore[no-any-return]

    def close_all(self) -> None:
        with self._lock:
            for handle, _ in self._handles.values():
                with contextlib.suppress(Exception):
                    self._close(handle)
            self._handles.clear()
