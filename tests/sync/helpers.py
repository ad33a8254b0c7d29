"""An application writing while a migration runs, and the checks that catch lost updates and
resurrected deletes (independently of vmkit's own verifier)."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any, Callable, TextIO

import numpy as np

from vmkit import TargetSpec, connect
from vmkit.core.records import RecordBatch

DIM = 8


def fill(uri: str, n: int, dim: int = DIM, metric: str = "dot", chunk: int = 1000, seed: int = 1) -> None:
    """ids 0..n-1 (ints, scan order = id order), metadata {"v": 0, "i": id}."""
    rng = np.random.default_rng(seed)
    with connect(uri) as conn:
        if conn.describe() is None:
            conn.create(TargetSpec(getattr(conn, "collection", "src"), dim, metric))
        for start in range(0, n, chunk):
            ids = list(range(start, min(n, start + chunk)))
            conn.upsert(RecordBatch(ids, rng.standard_normal((len(ids), dim)), [{"v": 0, "i": i} for i in ids]))


class Workload:
    """60% inserts of new ids, 30% updates of ids the bulk copy already passed, 10% deletes.

    Only acknowledged operations (the call returned) are logged: ``last[id]`` is the last
    acknowledged op, ("upsert", version) or ("delete", None). Deleted ids are never reused.
    ``oplog`` (a text file) gets one JSON line per acknowledged op, for checks across processes.
    """

    def __init__(self, upsert: Callable[[RecordBatch], None], delete: Callable[[list[Any]], None],
                 initial: int, copied_upto: Callable[[], int], *, seed: int = 0, rate: float = 80.0,
                 id_base: int = 10**6, oplog: TextIO | None = None, dim: int = DIM) -> None:
        self.upsert_fn, self.delete_fn, self.copied_upto = upsert, delete, copied_upto
        self.rng = random.Random(seed)
        self.vec = np.random.default_rng(seed)
        self.initial, self.next_id, self.rate, self.dim = initial, id_base, rate, dim
        self.deleted: set[int] = set()
        self.inserted: list[int] = []
        self.version: dict[int, int] = {}
        self.last: dict[int, tuple[str, int | None]] = {}
        self.counts = {"insert": 0, "update": 0, "delete": 0}
        self.oplog = oplog
        self.stop = threading.Event()
        self.lock = threading.Lock()  # the copier's own test writes (in watermark windows) go through it too
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="app-writer")
        self.started = self.seconds = 0.0

    # one operation ------------------------------------------------------------------------
    def _live_copied(self) -> int | None:
        hi = min(self.copied_upto(), self.initial - 1)
        for _ in range(20):
            rid = self.rng.randint(0, max(0, hi))
            if rid not in self.deleted:
                return rid
        return None

    def _intent(self, rid: int) -> None:
        if self.oplog is not None:  # a kill before the ack leaves this op uncertain
            self.oplog.write(json.dumps([rid, "intent", None]) + "\n")
            self.oplog.flush()

    def _write(self, rid: int, kind: str) -> None:
        self._intent(rid)
        v = self.version.get(rid, 0) + 1
        self.version[rid] = v
        self.upsert_fn(RecordBatch([rid], self.vec.standard_normal((1, self.dim)), [{"v": v, "i": rid}]))
        self._ack(rid, kind, ("upsert", v))

    def _ack(self, rid: int, kind: str, last: tuple[str, int | None]) -> None:
        self.last[rid] = last
        self.counts[kind] += 1
        if self.oplog is not None:
            self.oplog.write(json.dumps([rid, last[0], last[1]]) + "\n")
            self.oplog.flush()

    def update(self, rid: int) -> bool:
        """An update of ``rid`` from another thread (e.g. inside a watermark window)."""
        with self.lock:
            if rid in self.deleted:
                return False
            self._write(rid, "update")
            return True

    def step(self) -> None:
        with self.lock:
            self._step()

    def _step(self) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            rid, self.next_id = self.next_id, self.next_id + 1
            self.inserted.append(rid)
            self._write(rid, "insert")
        elif roll < 0.9:
            rid = self._live_copied()
            if rid is not None:
                self._write(rid, "update")
        else:
            pool = [r for r in self.inserted[-50:] if r not in self.deleted]
            rid = self.rng.choice(pool) if pool and self.rng.random() < 0.3 else self._live_copied()
            if rid is not None:
                self.deleted.add(rid)
                self._intent(rid)
                self.delete_fn([rid])
                self._ack(rid, "delete", ("delete", None))

    # the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.rate
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                self.step()
                self.stop.wait(max(0.0, period - (time.monotonic() - t0)))
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> "Workload":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def join(self) -> None:
        """The freeze point: no application write after this returns."""
        self.stop.set()
        self._thread.join(timeout=60)
        self.seconds = time.monotonic() - self.started
        if self.error is not None:
            raise self.error

    @property
    def ops(self) -> int:
        return sum(self.counts.values())


def lost_and_resurrected(last: dict[Any, tuple[str, Any]], uri: str) -> tuple[list[Any], list[Any]]:
    """Ids whose last acknowledged update is not what ``uri`` holds; deleted ids it holds."""
    with connect(uri) as conn:
        ids = list(last)
        found: dict[Any, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            got = conn.fetch(ids[start:start + 500])
            found.update(zip(got.ids, got.metadata))
    lost = [rid for rid, (op, v) in last.items() if op == "upsert" and found.get(rid, {}).get("v") != v]
    back = [rid for rid, (op, _) in last.items() if op == "delete" and rid in found]
    return lost, back


def read_oplog(path: Any) -> tuple[dict[Any, tuple[str, Any]], set[Any]]:
    """(last acknowledged op per id, ids whose last op was in flight when a process died)."""
    last: dict[Any, tuple[str, Any]] = {}
    uncertain: set[Any] = set()
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                continue
            rid, op, v = json.loads(line)
            if op == "intent":
                uncertain.add(rid)
            else:
                uncertain.discard(rid)
                last[rid] = (op, v)
    return last, uncertain
