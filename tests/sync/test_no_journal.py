"""Without a journaling writer: fingerprint-diff passes while the application writes straight to
the source, then a short write freeze for the last pass and the cutover (minimal downtime)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from vmkit import connect, verify
from vmkit.core.errors import StateError
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan
from vmkit.sync.engine import Sync

from .helpers import Workload, fill, lost_and_resurrected

N = 20_000


def test_passes_converge_and_the_freeze_is_reported(tmp_path):
    fill("memory://src", N)
    src = connect("memory://src")
    sync = Sync.create("memory://src", "memory://dst", migration_id="nj", state=tmp_path / "s.db",
                       mode="passes", batch_size=1000)
    work = Workload(src.upsert, lambda ids: src.delete(ids), N, lambda: N, seed=11, rate=100).start()
    frozen: list[int] = []

    @contextlib.contextmanager
    def freeze():  # the application's own write pause; after the cutover it writes to the target
        work.join()
        frozen.append(work.ops)
        yield

    with pytest.raises(StateError, match="has a journal"):
        Sync.create("memory://src", "memory://x", migration_id="j", state=tmp_path / "s.db").converge_without_journal(freeze)
    sync.bulk_copy()
    copied = work.ops
    while work.ops < copied + 20:  # changes the bulk copy cannot have seen
        work.stop.wait(0.01)
    st = sync.converge_without_journal(freeze)
    assert st.phase == "cut_over" and sync.store.get("nj").state == "completed"
    assert st.freeze_s is not None and st.freeze_s > 0 and "write freeze" in str(st)
    assert st.counters["passes"] >= 2 and st.counters["repaired"] > 0  # passes copied the live changes
    assert frozen and work.ops == frozen[0]  # nothing was written after the freeze began
    with connect("memory://dst") as dst:
        assert verify(src, dst, Plan.from_json(sync.store.get("nj").plan_json)).passed
    assert lost_and_resurrected(work.last, "memory://dst") == ([], [])
    print(f"\n{work.ops} direct writes, {st.counters['passes']} passes, freeze {st.freeze_s:.3f} s")

    # rollback without a journal: under a freeze too, passes copy the target back
    dst = connect("memory://dst")
    dst.upsert(RecordBatch([777_777], np.ones((1, 8)), [{"v": 1}]))
    dst.delete([5])
    with pytest.raises(StateError, match="freeze"):
        sync.rollback()
    st = sync.rollback(freeze=contextlib.nullcontext())
    assert st.phase == "rolled_back_after_cutover"
    assert len(src.fetch([777_777])) == 1 and len(src.fetch([5])) == 0
