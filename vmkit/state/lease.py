"""Who is running a migration: the liveness rules of the runner lease kept in the state store.

A lease names a token, a pid, a host and when it was last renewed. On this host the pid decides
(a dead or zombie process holds nothing); a lease naming this very process is live only while a
runner here holds its token, so a lease restored from a state backup is not mistaken for ours.
A runner on another host is presumed dead after ``LEASE_TTL_S`` without renewal.
"""

from __future__ import annotations

import os
import socket

LEASE_TTL_S = 120.0  # a runner on another host is presumed dead after this long silent
_HELD: set[str] = set()  # lease tokens held by runners in this process


def hold(token: str) -> None:
    _HELD.add(token)


def drop(token: str) -> None:
    _HELD.discard(token)


def holder_alive(token: str, pid: int | None, host: str | None, at: float | None, now: float) -> bool:
    if host == socket.gethostname() and pid:
        if pid == os.getpid():
            return token in _HELD  # a runner here (e.g. a notebook thread) still holds it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # a zombie is dead for our purposes
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return True
    return at is not None and now - at < LEASE_TTL_S
