"""Connections of one connector: autocommit, one per concurrent caller (parallel writes),
pgvector's types registered on each, broken ones thrown away. The password is never ours:
libpq reads PGPASSWORD or ~/.pgpass itself (libpq docs, "Environment Variables", "The
Password File")."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from vmkit.connectors.pgvector import wire
from vmkit.connectors.pgvector.errors import classify
from vmkit.connectors.shared import import_sdk
from vmkit.core.errors import ConnectorError


def sdk() -> Any:
    import_sdk("pgvector", "pgvector", "pgvector")
    return import_sdk("psycopg", "psycopg", "pgvector")


class Pool:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _open(self) -> Any:
        psycopg = sdk()
        conn = psycopg.connect(self.conninfo, autocommit=True)
        try:
            if psycopg.types.TypeInfo.fetch(conn, "vector") is not None:  # else: create() adds it
                wire.register(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def conn(self, where: str) -> Iterator[Any]:
        """A connection for one unit of work; psycopg errors become vmkit's (``where`` says
        what was being done)."""
        psycopg = sdk()
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._open()
            yield conn
        except psycopg.Error as exc:
            raise classify(exc, where) from None
        except ConnectorError:
            raise
        finally:
            if conn is not None:
                if conn.closed or conn.broken or conn.info.transaction_status != 0:  # 0: IDLE
                    with contextlib.suppress(Exception):
                        conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)

    def reset(self) -> None:
        """Close every idle connection (new ones see types created since)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
