"""Pinecone's limits recognised and kept (issue 21), through the SDK against the emulator: a
429 that never clears (a Starter plan's monthly write units) stops the run resumably within
the ``max_429`` bound, naming the limit; an upsert the service finds too big (413, 400
"Request size ... exceeds", a proxy's bare 413) is split and written, nothing dead-lettered;
upsert bytes and deleted records a second are paced, as the emulator's request log shows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from emulators.pinecone_emulator import Logged, PineconeEmulator

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.core.errors import SystemicRefusal
from vmkit.core.records import RecordBatch

pytest.importorskip("pinecone")

FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.005}  # the runner's back-off, in tests


def _batch(n: int, ns: str = "", pad: int = 0, prefix: str = "r") -> RecordBatch:
    vecs = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32) + 3
    meta = [{"i": i, "pad": "x" * pad} for i in range(n)]
    return RecordBatch([f"{prefix}{i:04d}" for i in range(n)], vecs, meta, namespace=ns)


def _memory_source(n: int, pad: int, namespaces: tuple[str, ...] = ("",)) -> None:
    src = connect("memory://src")
    src.create(TargetSpec("src", 4, "cosine"))
    for ns in namespaces:
        src.upsert(_batch(n, ns, pad))


def _most_in_a_window(entries: list[Logged], weight: Any, seconds: float = 1.0) -> int:
    """The largest total ``weight`` of requests arriving within any ``seconds`` window."""
    times = sorted((e.started, weight(e)) for e in entries)
    best = 0
    for i, (t0, _) in enumerate(times):
        best = max(best, sum(w for t, w in times[i:] if t < t0 + seconds))
    return best


def test_a_429_that_never_clears_stops_the_run_resumably(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list,
                                                         tmp_path: Any) -> None:
    pinecone_emu.create_index("dst", 4)
    _memory_source(40, 0)
    m = Migration.create("memory://src", "pinecone://dst?max_429=3&max_429_s=0",
                         migration_id="cap", state=tmp_path / "s.db", batch_size=20, **FAST)
    pinecone_emu.faults.exhausted = {"upsert"}  # the project's monthly write units are used up
    with pytest.raises(SystemicRefusal, match="monthly write unit limit") as info:
        m.run()
    assert "max_429" in str(info.value) and "resume" in str(info.value)
    st = m.status()
    assert st.state == "in_progress" and st.records_written == 0 and st.records_rejected == 0
    assert any("monthly write unit limit" in e for e in st.last_errors)
    # three SDK calls, each tried once and retried by the SDK: within the bound, then stopped
    assert len(pinecone_emu.requests("upsert", 429)) == 3 * (1 + 3)
    pinecone_emu.faults.exhausted = set()  # next month: the run resumes and completes
    st = m.run()
    assert st.state == "completed" and st.verification == "passed" and st.records_written == 40


def test_a_rate_limit_kept_full_stops_past_the_bound(pinecone_emu: PineconeEmulator,
                                                    pinecone_sdk_sleeps: list) -> None:
    """A per-second limit answers 429 to every call: past max_429 calls (and max_429_s
    seconds) the connector stops, naming the operation's documented limit."""
    pinecone_emu.create_index("dst", 4)
    conn = connect("pinecone://dst?max_429=5&max_429_s=0")
    pinecone_emu.faults.rate_429, pinecone_emu.faults.ops = 1.0, frozenset({"upsert"})
    for _ in range(4):
        with pytest.raises(Exception, match="429") as info:
            conn.upsert(_batch(2))
        assert not isinstance(info.value, SystemicRefusal)  # retried: a 429 usually clears
    with pytest.raises(SystemicRefusal, match="upsert rate limit .100 upsert requests and 50 MB"):
        conn.upsert(_batch(2))


def test_a_passing_429_is_retried_not_stopped(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    """Fewer 429s than the bound, then success: the count starts again."""
    pinecone_emu.create_index("dst", 4)
    conn = connect("pinecone://dst?max_429=3&max_429_s=0")
    for _ in range(3):
        pinecone_emu.faults.inject(429, times=4, op="upsert")  # one SDK call's four tries
        pinecone_emu.faults.inject(429, times=4, op="upsert")
        with pytest.raises(Exception, match="429"):
            conn.upsert(_batch(2))
        with pytest.raises(Exception, match="429"):
            conn.upsert(_batch(2))
        conn.upsert(_batch(2))  # two in a row, then success: never three
    assert len(pinecone_emu.requests("upsert", 200)) == 3


@pytest.mark.parametrize("how", ["413", "400", "bare413"])
def test_an_oversized_upsert_is_split_and_written(pinecone_emu: PineconeEmulator, how: str) -> None:
    pinecone_emu.create_index("dst", 4)
    pinecone_emu.max_request_bytes, pinecone_emu.oversize = 40_000, how  # below the 2 MB vmkit fits bodies to
    conn = connect("pinecone://dst?rate_limits=off")
    status = 400 if how == "400" else 413
    conn.upsert(_batch(100, "ns", pad=1500))  # ~160 KB in one body
    refused = len(pinecone_emu.requests("upsert", status))
    assert 1 <= refused <= 3  # halved until the service takes it: 160, 80, 40 KB
    conn.upsert(_batch(100, "ns2", pad=1500))  # later bodies are kept under the size learned
    assert len(pinecone_emu.requests("upsert", status)) == refused
    assert all(r.nbytes <= 40_000 for r in pinecone_emu.requests("upsert", 200))
    assert sum(r.records for r in pinecone_emu.requests("upsert", 200)) == 200
    for ns in ("ns", "ns2"):
        assert len(conn.fetch([f"r{i:04d}" for i in range(100)], ns)) == 100


def test_a_migration_with_oversized_requests_dead_letters_nothing(pinecone_emu: PineconeEmulator,
                                                                  tmp_path: Any) -> None:
    pinecone_emu.create_index("dst", 4)
    pinecone_emu.max_request_bytes, pinecone_emu.oversize = 30_000, "400"
    _memory_source(120, 1500, ("", "b"))
    m = Migration.create("memory://src", "pinecone://dst?rate_limits=off", migration_id="big",
                         state=tmp_path / "s.db", batch_size=60, **FAST)
    st = m.run()
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_written == 240 and st.records_rejected == 0
    # The service did refuse requests as too big, but only until the connector learned the
    # size it takes: 4 batches of ~96 KB, refused at 96 and 48 KB once, never again.
    assert 1 <= len(pinecone_emu.requests("upsert", 400)) <= 3


def test_upsert_bytes_and_deleted_records_are_paced(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("dst", 4)
    pinecone_emu.rates.limits.update(upsert_bytes=60_000, delete_records=150, delete_records_index=150)
    conn = connect("pinecone://dst?rate_limits=upsert_bytes:60000,delete_records:150,"
                   "delete_records_index:150")
    conn._max_body = 15_000  # several requests a second's worth
    for ns in ("a", "b"):
        conn.upsert(_batch(60, ns, pad=1000))  # ~70 KB each: over a second's bytes
    ids = [f"r{i:04d}" for i in range(60)]
    for ns in ("a", "b"):
        for start in range(0, 60, 20):
            conn.delete(ids[start:start + 20], ns)  # 120 records over both namespaces
    conn.delete(ids, "a")  # again: 60 more (already gone; the service counts them all)
    assert pinecone_emu.rates.refused == 0 and not pinecone_emu.requests(status=429)
    ups = pinecone_emu.requests("upsert", 200)
    assert sum(r.records for r in ups) == 120
    for ns in ("a", "b"):
        assert _most_in_a_window([r for r in ups if r.namespace == ns], lambda e: e.nbytes) <= 60_000
    dels = pinecone_emu.requests("delete", 200)
    assert _most_in_a_window(dels, lambda e: e.records) <= 150  # per index, both namespaces


def test_query_read_units_are_paced_by_what_queries_cost(pinecone_emu: PineconeEmulator) -> None:
    """Each query is weighed by the read units its namespace's last query reported (5 here),
    so 30 queries keep within 50 units a second though 50 requests would fit."""
    pinecone_emu.create_index("src", 4)
    pinecone_emu.seed("src", [(f"r{i}", [i + 1.0, 1, 1, 1], None, None) for i in range(20)], namespace="q")
    pinecone_emu.rates.limits["query_units"] = 50
    conn = connect("pinecone://src?rate_limits=query_units:50")
    for i in range(30):
        assert len(conn.nearest("q", np.array([1.0, i, 1, 1], np.float32), 3, False)) == 3
    assert pinecone_emu.rates.refused == 0 and not pinecone_emu.requests(status=429)
    assert _most_in_a_window(pinecone_emu.requests("query", 200), lambda e: 5) <= 50


def test_settle_waits_out_the_window_of_this_process_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Dask workers take over an index's limits at their shares, the coordinator's own
    requests must have left the window (else the plan's samples and the first chunks together
    pass the limit)."""
    from vmkit.connectors.pinecone import rates

    slept: list[float] = []
    monkeypatch.setattr(rates.time, "sleep", slept.append)
    rates.settle("settle-test-unused")
    assert slept == []  # nothing sent to that index: nothing to wait for
    rates.pacer_for("settle-test-host", {"fetch": 10}).wait("fetch")
    rates.settle("settle-test-other")
    assert slept == []
    rates.settle("settle-test-name", "settle-test-host")
    assert len(slept) == 1 and 0 < slept[0] <= rates._WINDOW_MS / 1000
