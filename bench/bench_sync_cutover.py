"""Time from the end of the bulk copy to cutover, on a source that shows writes late.

    .venv/bin/python bench/bench_sync_cutover.py                    # lags 0, 0.5 and 2 s
    .venv/bin/python bench/bench_sync_cutover.py --lags 0,1 --n 20000 --rate 50

Per lag: memory:// source of N records whose writes show ``lag`` seconds late (``lag_ms``, as
Pinecone shows them), an application writing RATE operations a second through the
JournalingWriter (60% inserts, 30% updates, 10% deletes) from before the bulk copy until after
the cutover, and ``Sync``: bulk copy, rounds of catch-up + verify (at most 6), cutover. Prints
the time from the end of the bulk copy to the cutover, the rounds and passes it took, how long
writes were paused, and checks the application's last write of every id on the target.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from vmkit import TargetSpec, connect
from vmkit.connectors.memory import faults_for, reset_memory_stores
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore
from vmkit.sync.engine import Sync
from vmkit.sync.writer import JournalingWriter


class App(threading.Thread):
    """The application: RATE ops/s through the writer; ``last[id]`` = its last acknowledged op."""

    def __init__(self, writer: JournalingWriter, n: int, rate: float, dim: int, seed: int = 1) -> None:
        super().__init__(daemon=True)
        self.w, self.n, self.rate, self.dim = writer, n, rate, dim
        self.rng, self.vec = random.Random(seed), np.random.default_rng(seed)
        self.last: dict[int, Any] = {}
        self.stop, self.ops, self.error, self.next_id = threading.Event(), 0, None, 10**7

    def run(self) -> None:
        try:
            while not self.stop.wait(1.0 / self.rate):
                roll, v = self.rng.random(), self.ops + 1
                if roll < 0.9:
                    if roll < 0.6:
                        rid, self.next_id = self.next_id, self.next_id + 1
                    else:
                        rid = self.rng.randrange(self.n)
                    self.w.upsert(RecordBatch([rid], self.vec.standard_normal((1, self.dim)), [{"v": v}]))
                    self.last[rid] = v
                else:
                    rid = self.rng.randrange(self.n)
                    self.w.delete([rid])
                    self.last[rid] = None
                self.ops += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc


def lost_and_resurrected(last: dict[int, Any], uri: str) -> tuple[int, int]:
    with connect(uri) as dst:
        ids = list(last)
        got: dict[int, Any] = {}
        for i in range(0, len(ids), 1000):
            b = dst.fetch(ids[i:i + 1000])
            got.update((rid, m.get("v")) for rid, m in zip(b.ids, b.metadata))
    lost = sum(1 for rid, v in last.items() if v is not None and got.get(rid) != v)
    return lost, sum(1 for rid, v in last.items() if v is None and rid in got)


def one(lag: float, n: int, rate: float, dim: int, batch: int, state: Path) -> dict[str, Any]:
    reset_memory_stores()
    rng = np.random.default_rng(0)
    with connect("memory://src") as src:
        src.create(TargetSpec("src", dim, "dot"))
        for start in range(0, n, 5000):
            ids = list(range(start, min(n, start + 5000)))
            src.upsert(RecordBatch(ids, rng.standard_normal((len(ids), dim)), [{"v": 0} for _ in ids]))
    sync = Sync.create("memory://src", "memory://dst", migration_id=f"lag{lag}", state=state, batch_size=batch)
    faults_for("src").lag_s = lag
    writer = JournalingWriter(sync.id, StateStore(state))
    app = App(writer, n, rate, dim)
    app.start()
    t0 = time.monotonic()
    sync.bulk_copy()
    t1 = time.monotonic()
    rounds = 0
    while rounds < 6:
        rounds += 1
        sync.catch_up()
        if sync.verify().phase == "verified":
            break
    st = sync.cutover()
    t2 = time.monotonic()
    at_cutover = app.ops
    while app.ops < at_cutover + int(rate) and app.error is None:  # a second of writes after it
        time.sleep(0.05)
    app.stop.set()
    app.join()
    if app.error is not None:
        raise app.error
    lost, back = lost_and_resurrected(app.last, "memory://dst")
    writer.close()
    return {"lag": lag, "bulk_s": t1 - t0, "cutover_s": t2 - t1, "rounds": rounds,
            "passes": st.counters["passes"], "paused_s": st.cutover["pause_s"], "ops": app.ops,
            "lost": lost, "resurrected": back, "phase": st.phase}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lags", default="0,0.5,2", help="read-after-write lags in seconds")
    ap.add_argument("--n", type=int, default=10_000, help="source records")
    ap.add_argument("--rate", type=float, default=30.0, help="application operations per second")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{args.n} records, dim {args.dim}, batch {args.batch}, application {args.rate:.0f} ops/s")
    print(f"{'lag s':>6} {'bulk s':>7} {'bulk end->cutover s':>20} {'rounds':>6} {'passes':>6} "
          f"{'paused s':>8} {'app ops':>7} {'lost':>4} {'resurrected':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for lag in (float(x) for x in args.lags.split(",")):
            r = one(lag, args.n, args.rate, args.dim, args.batch, Path(tmp) / f"s{lag}.db")
            print(f"{r['lag']:>6.1f} {r['bulk_s']:>7.1f} {r['cutover_s']:>20.1f} {r['rounds']:>6} {r['passes']:>6} "
                  f"{r['paused_s']:>8.2f} {r['ops']:>7} {r['lost']:>4} {r['resurrected']:>11}", flush=True)


if __name__ == "__main__":
    main()
