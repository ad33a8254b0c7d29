"""Drive the real CLI in child processes and kill them for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vmkit.connectors import connect

ACK = re.compile(r"batch (\d+) acknowledged")


def cli(args: list[str], state: Path, log: Path | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.Popen[bytes]:
    full = [sys.executable, "-m", "vmkit"]
    if log is not None:
        full += ["--log-file", str(log)]
    full += args + ["--state", str(state)]
    return subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


def max_acked(log: Path) -> int:
    """Highest batch seq the target acknowledged, per the runner's own log."""
    if not log.exists():
        return 0
    return max((int(m.group(1)) for m in ACK.finditer(log.read_text())), default=0)


def wait_for_ack(proc: subprocess.Popen[bytes], log: Path, above: int, timeout: float = 60) -> bool:
    """Wait until the child acknowledged a batch past ``above``; False if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if max_acked(log) > above:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError("child made no progress")


def kill9(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


def contents(uri: str) -> dict[object, tuple[bytes, object]]:
    """Every record of a collection, read independently of vmkit's verifier."""
    out: dict[object, tuple[bytes, object]] = {}
    with connect(uri) as conn:
        cursor = None
        while True:
            batch, cursor = conn.scan(cursor, 500)
            for rid, vec, meta, _ in batch.rows():
                out[rid] = (np.asarray(vec, np.float32).tobytes(), meta)
            if cursor is None:
                return out
