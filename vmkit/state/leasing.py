"""The runner lease as rows of the state store: taken, renewed, kept fresh during long work and
released (``LeaseRecords``, mixed into StateStore), and ``held_row``, the check every write of a
runner makes inside its transaction. Whether a recorded holder is still alive is
``vmkit.state.lease``'s call."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from vmkit.core.errors import LeaseHeld, StateError, UnknownMigration
from vmkit.state import lease


class LeaseRecords:
    """Mixed into StateStore, which provides the transaction and the event log."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @staticmethod
    def _event(db: sqlite3.Connection, mid: str, event: str, detail: str = "") -> None:
        raise NotImplementedError

    def acquire_lease(self, mid: str) -> str:
        """Take the runner lease, or raise LeaseHeld naming the live holder."""
        token, host, pid, now = uuid.uuid4().hex, socket.gethostname(), os.getpid(), time.time()
        with self._tx() as db:
            row = db.execute("SELECT lease_owner, lease_pid, lease_host, lease_at FROM migrations WHERE id=?",
                             (mid,)).fetchone()
            if row is None:
                raise UnknownMigration(mid)
            owner, opid, ohost, oat = row
            if owner and lease.holder_alive(owner, opid, ohost, oat, now):
                raise LeaseHeld(
                    f"migration '{mid}' is already being run by pid {opid} on {ohost}; "
                    f"stop it with `vmkit migrate stop --id {mid}` or wait for it to finish"
                )
            if owner:
                self._event(db, mid, "lease taken over", f"from dead pid {opid} on {ohost}")
            db.execute("UPDATE migrations SET lease_owner=?, lease_pid=?, lease_host=?, lease_at=? WHERE id=?",
                       (token, pid, host, now, mid))
            lease.hold(token)
        return token

    def renew_lease(self, mid: str, token: str) -> None:
        """Mark the lease fresh during long work without checkpoints (verification, sync);
        raise LeaseHeld if another runner took it over meanwhile."""
        with self._tx() as db:
            cur = db.execute("UPDATE migrations SET lease_at=? WHERE id=? AND lease_owner=?",
                             (time.time(), mid, token))
            if cur.rowcount == 0:
                raise LeaseHeld(f"migration '{mid}': this runner's lease was taken over; stopping")

    @contextmanager
    def lease_kept(self, mid: str, token: str | None, every_s: float = lease.LEASE_TTL_S / 6) -> Iterator[None]:
        """Renew lease ``token`` (if any) every ``every_s`` on a daemon thread while the body
        runs: long work without checkpoints (full verification) keeps its lease live."""
        if token is None:
            yield
            return
        done = threading.Event()

        def renew() -> None:
            while not done.wait(every_s):
                try:
                    self.renew_lease(mid, token)
                except StateError:
                    return  # taken over: the next state change refuses this runner

        keeper = threading.Thread(target=renew, name="vmkit-lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join(timeout=5)

    def release_lease(self, mid: str, token: str) -> None:
        lease.drop(token)  # first: a failed release still leaves no live holder here
        with self._tx() as db:
            db.execute("UPDATE migrations SET lease_owner=NULL, lease_pid=NULL, lease_host=NULL"
                       " WHERE id=? AND lease_owner=?", (mid, token))


def held_row(db: sqlite3.Connection, mid: str, lease: str | None, columns: str = "state") -> tuple[Any, ...]:
    """Inside a write transaction: the migration's ``columns``. UnknownMigration if it is gone;
    LeaseHeld if ``lease`` (when given) is no longer the holder's, so a runner whose lease was
    taken over can change nothing."""
    row = db.execute(f"SELECT lease_owner, {columns} FROM migrations WHERE id=?", (mid,)).fetchone()
    if row is None:
        raise UnknownMigration(mid)
    if lease is not None and row[0] != lease:
        raise LeaseHeld(f"migration '{mid}': this runner's lease was taken over; stopping")
    return tuple(row[1:])
