"""Drive the real CLI in child processes and kill them for real."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vmkit.connectors import connect

ACK = re.compile(r"batch (\d+) acknowledged")
ACK_AT = re.compile(r"^\S+ (\d\d):(\d\d):(\d\d),(\d{3}) DEBUG \S+: batch \d+ acknowledged", re.M)


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


def batch_seconds(*logs: Path, default: float = 0.05) -> float:
    """The median time between consecutive acknowledgements in these runner logs (their
    timestamps are to the millisecond), or ``default`` before any log holds two."""
    gaps: list[float] = []
    for log in logs:
        if log.exists():
            at = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
                  for h, m, s, ms in ACK_AT.findall(log.read_text())]
            gaps += [b - a for a, b in zip(at, at[1:]) if b >= a]  # (not across midnight)
    return float(np.median(gaps)) if gaps else default


def sleep_into_next_batch(rng: random.Random, *logs: Path) -> None:
    """Sleep to a random moment inside the batch after the last acknowledged one (write,
    commit or validation), however fast batches go."""
    time.sleep(rng.uniform(0.0, batch_seconds(*logs)))


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


# -- in-process helpers (memory:// stores live in this process) ------------------------------

def memory_source(name: str = "src", n: int = 2000, dim: int = 8, metric: str = "dot",
                  namespaces: tuple[str, ...] = ("",), seed: int = 1,
                  flag_every: int | None = None) -> str:
    """Create memory://NAME with ``n`` records per namespace, ids ``r00000``.., metadata
    ``{"i": i}`` (plus ``"bad": True`` on every ``flag_every``-th record, for targets told to
    refuse that field)."""
    from vmkit.connectors.base import TargetSpec
    from vmkit.core.records import RecordBatch

    conn = connect(f"memory://{name}")
    conn.create(TargetSpec(name, dim, metric))
    rng = np.random.default_rng(seed)
    for ns in namespaces:
        meta = [{"i": i, **({"bad": True} if flag_every and i % flag_every == 5 else {})}
                for i in range(n)]
        conn.upsert(RecordBatch([f"r{i:05d}" for i in range(n)],
                                rng.standard_normal((n, dim)).astype(np.float32), meta,
                                namespace=ns))
    return f"memory://{name}"


def snapshot(uri: str) -> dict[tuple[str, object], tuple[bytes, object, object]]:
    """(namespace, id) -> (vector bytes, metadata, sparse) for every record, read with plain
    scans (independent of vmkit's verifier). Namespaces are kept apart."""
    out: dict[tuple[str, object], tuple[bytes, object, object]] = {}
    if uri.startswith("memory://"):  # straight from the store: no injected faults, no copies
        from vmkit.connectors.memory import _STORES

        store = _STORES.get(uri.partition("://")[2].split("?")[0].strip("/"))
        for ns, rows in ({} if store is None else store.namespaces).items():
            for rid, (vec, meta, sp, _named) in rows.items():
                sparse = None if sp is None else (sp.indices.tobytes(), sp.values.tobytes())
                out[(ns, rid)] = (np.asarray(vec, np.float32).tobytes(), meta, sparse)
        return out
    with connect(uri) as conn:
        if conn.describe() is None:
            return out
        cursor = None
        while True:
            batch, cursor = conn.scan(cursor, 1000)
            for rid, vec, meta, sp in batch.rows():
                sparse = None if sp is None else (sp.indices.tobytes(), sp.values.tobytes())
                out[(batch.namespace, rid)] = (np.asarray(vec, np.float32).tobytes(), meta, sparse)
            if cursor is None:
                return out


def ledger(store, mid: str) -> list[tuple]:
    """The batch ledger rows (seq, cursor_before, cursor_after, read, written, rejected)."""
    return store.query("SELECT seq, cursor_before, cursor_after, read, written, rejected"
                       " FROM batches WHERE migration_id=? ORDER BY seq", mid)


def assert_resumable(store, mid: str) -> None:
    """What a stopped or failed run must leave: in_progress, no lease held, the cursor at
    the last committed batch, counters equal to the ledger."""
    rec = store.get(mid)
    rows = ledger(store, mid)
    assert rec.state == "in_progress", rec.state
    assert rec.lease_owner is None and rec.lease_pid is None
    assert rec.batches == len(rows) == (rows[-1][0] if rows else 0)
    assert rec.cursor == (rows[-1][2] if rows else None)
    assert rec.records_read == sum(r[3] for r in rows)
    assert rec.records_written == sum(r[4] for r in rows)
    for before, after in zip(rows, rows[1:]):  # each batch starts where the previous ended
        assert after[1] == before[2]


# -- a migration killed by SIGKILL once a batch is committed --------------------------------

def committed(state: Path, mid: str) -> int:
    """Batches the state store says migration ``mid`` committed (0 before it exists)."""
    from vmkit.state.store import StateStore

    if not state.exists():
        return 0
    store = StateStore(state)
    try:
        return store.get(mid).batches if store.exists(mid) else 0
    finally:
        store.close()


def start_and_kill_after_a_batch(source: str, target: str, mid: str, state: Path, batch_size: int,
                                 timeout: float = 300) -> int:
    """``vmkit migrate start`` in a child, SIGKILLed as soon as one batch is committed; the
    number of batches committed when it died."""
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", mid,
                "--batch-size", str(batch_size), "--no-progress"], state)
    deadline = time.monotonic() + timeout
    while committed(state, mid) < 1:
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "no batch committed"
        time.sleep(0.005)
    assert kill9(proc) == -9
    proc.communicate()
    return committed(state, mid)


def resume(mid: str, state: Path, timeout: float = 900) -> tuple[int, str]:
    """``vmkit migrate resume`` in a child: its exit code and output."""
    proc = cli(["migrate", "resume", "--id", mid, "--no-progress"], state)
    out = proc.communicate(timeout=timeout)[0].decode()
    return proc.returncode, out
