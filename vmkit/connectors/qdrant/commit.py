"""One SQLite commit per write for the embedded Qdrant engine.

qdrant-client's local mode persists every point in a transaction of its own, so each point
costs a journal sync: a 1000-point batch costs 1000 of them, and they dominate a copy into an
embedded collection. Inside ``one_commit`` the collection's writes share one transaction that
is committed (and synced) once, when the block ends.

vmkit's checkpoint rule still holds: the commit comes before the write returns, so a batch is
on disk before its cursor is saved. A process killed mid-batch leaves none of that batch on
disk (SQLite rolls the open transaction back when the directory is next opened) and resume
writes the whole batch again. If the block fails part-way, the points the engine persisted
before the failure are committed, as they would have been one by one.

This reaches into the engine's private persistence object. Where that is not there as expected
(another qdrant-client version, or ``:memory:``), writes keep the engine's own commits.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import Any, Iterator

log = logging.getLogger("vmkit.connectors.qdrant.connector")


class _DeferredCommit:
    """Stands in for the engine's connection: ``with connection:`` no longer commits."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        return self._connection

    def __exit__(self, *exc: object) -> None:
        pass  # neither commit nor swallow: the enclosing one_commit commits what was written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _persistence(client: Any, collection: str) -> Any | None:
    """The embedded engine's persistence object for ``collection``, if it has the expected shape."""
    local = getattr(client, "_client", None)
    find = getattr(local, "_get_collection", None)
    if find is None:
        return None
    try:
        persistence = getattr(find(collection), "storage", None)
    except Exception:  # noqa: BLE001 - no such collection yet: the engine's own call will say so
        return None
    if not isinstance(getattr(persistence, "storage", None), sqlite3.Connection):
        return None
    return persistence


@contextlib.contextmanager
def one_commit(client: Any, collection: str) -> Iterator[None]:
    """Group the embedded engine's per-point commits on ``collection`` into one.

    The caller must hold the lock that serializes calls into this engine.
    """
    persistence = _persistence(client, collection)
    if persistence is None:
        yield
        return
    connection: sqlite3.Connection = persistence.storage
    persistence.storage = _DeferredCommit(connection)
    try:
        yield
    finally:
        persistence.storage = connection
        connection.commit()
