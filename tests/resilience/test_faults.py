"""Faults injected through the memory connector (and the Pinecone emulator): 429s with and
without Retry-After, 5xx at 1/10/50%, hangs past a client timeout, connection resets after the
write was applied, per-object refusals inside an accepted batch, and terminal 4xx errors.

Each run either completes or stops resumably (state in_progress, cursor at the last committed
batch, the lease released, every committed record on the target); a resume then completes,
and the target ends equal to the source, read back with plain scans. Back-off delays are
recorded through tenacity's sleep seam (``retry_sleeps``), never measured on a wall clock.
"""

from __future__ import annotations

import random

import orjson
import pytest
from resilience.helpers import assert_resumable, memory_source, snapshot

from vmkit import Migration
from vmkit.connectors.memory import _id_key, faults_for
from vmkit.core.errors import InvalidData, TerminalError, TransientError

N, BATCH = 2000, 100
BATCHES = N // BATCH


def committed_keys(source: dict, cursor: str | None, scan_done: bool) -> list:
    """Source keys at or before a memory:// cursor ([namespace, last id])."""
    if scan_done:
        return list(source)
    if cursor is None:
        return []
    ns, last = orjson.loads(cursor)
    return [(kns, rid) for kns, rid in source
            if kns < ns or (kns == ns and last is not None and _id_key(rid) <= _id_key(last))]


def drive(m: Migration, source: dict, target_uri: str, limit: int = 300,
          errors: tuple[type[BaseException], ...] = (TransientError,)) -> tuple[object, int]:
    """Run until completed, resuming after every stop; check each stop is resumable and
    that nothing committed is missing from the target. Returns (status, stops)."""
    stops = 0
    for _ in range(limit):
        try:
            st = m.run()
        except errors:
            stops += 1
            assert_resumable(m.store, m.id)
            rec = m.store.get(m.id)
            on_target = snapshot(target_uri)
            for key in committed_keys(source, rec.cursor, rec.scan_done):
                assert on_target.get(key) == source[key], f"committed {key} is not on the target"
            continue
        if st.state == "completed":
            return st, stops
        raise AssertionError(f"run returned without completing:\n{st}")
    raise AssertionError(f"not completed after {limit} resumes")


def migration(tmp_path, target: str, mid: str = "m", **opts) -> Migration:
    return Migration.create("memory://src", target, migration_id=mid, state=tmp_path / "s.db",
                            **{"batch_size": BATCH, **opts})


def assert_ends_equal(st, source: dict, target: str = "memory://dst") -> None:
    assert st.state == "completed" and st.verification == "passed"
    assert snapshot(target) == source
    assert st.records_read == N == st.records_written and st.balanced
    assert st.batches == BATCHES  # no batch committed twice


@pytest.fixture
def source() -> dict:
    return snapshot(memory_source(n=N))


# -- 429 and back-off -----------------------------------------------------------------------

def test_retry_after_is_honoured_and_capped(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst")
    f = faults_for("dst")
    f.inject(TransientError("HTTP 429 Too Many Requests", retry_after=2.5), times=3, op="upsert")
    f.inject(TransientError("HTTP 429 Too Many Requests", retry_after=120), op="upsert")
    st = m.run()
    assert retry_sleeps == [2.5, 2.5, 2.5, 30.0]  # the server's delay, capped at retry_cap_s
    assert st.errors == {"transient": 4}
    assert f.calls["upsert"] == BATCHES + 4
    assert_ends_equal(st, source)


def test_retry_after_at_a_rate(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst?fail_rate=0.2&retry_after=1.5&seed=4")
    st = m.run()
    f = faults_for("dst")
    assert f.injected > 0 and retry_sleeps == [1.5] * f.injected
    assert_ends_equal(st, source)


def test_backoff_without_retry_after_is_exponential_jittered_and_capped(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst", retry_initial_s=0.2, retry_cap_s=5.0)
    faults_for("dst").inject(TransientError("HTTP 503 Service Unavailable"), times=7, op="upsert")
    st = m.run()
    assert len(retry_sleeps) == 7  # 8 attempts in all: the 8th succeeded
    for k, s in enumerate(retry_sleeps):
        base = 0.2 * 2**k
        assert min(base, 5.0) <= s <= min(base + 0.2, 5.0), (k, s)
    assert retry_sleeps[-1] == 5.0 and retry_sleeps[-2] == 5.0  # 6.4 and 12.8 capped
    assert any(s != 0.2 * 2**k for k, s in enumerate(retry_sleeps[:4]))  # jittered
    assert_ends_equal(st, source)


# -- 5xx at 1%, 10% and 50% -------------------------------------------------------------------

@pytest.mark.parametrize("rate,seed,min_stops", [(0.01, 1, 0), (0.10, 2, 0), (0.50, 1, 1)])
def test_5xx_at_a_rate_completes_or_stops_resumably(tmp_path, source, retry_sleeps, rate, seed, min_stops):
    """At 50% with the default 8 attempts a batch exhausts its retries now and then
    (0.5**8 per batch): the run must stop resumably, and a resume must complete."""
    m = migration(tmp_path, f"memory://dst?fail_rate={rate}&seed={seed}")
    st, stops = drive(m, source, "memory://dst")
    f = faults_for("dst")
    assert stops >= min_stops
    assert f.injected > 0
    # every failed attempt was retried (or ended a run), and nothing was written twice
    assert f.calls["upsert"] == BATCHES + f.injected
    assert len(retry_sleeps) == f.injected - stops
    assert_ends_equal(st, source)


def test_exhausted_retries_stop_at_the_last_commit(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst")
    m.run(max_batches=3)
    f = faults_for("dst")
    calls = f.calls["upsert"]
    f.inject(TransientError("HTTP 500 Internal Server Error"), times=8, op="upsert")
    with pytest.raises(TransientError):
        m.run()
    assert f.calls["upsert"] - calls == 8  # exactly retry_attempts, then stop
    assert_resumable(m.store, "m")
    assert m.store.get("m").batches == 3
    st = m.run()
    assert f.calls["upsert"] - calls == 8 + BATCHES - 3
    assert_ends_equal(st, source)


def test_giving_up_after_the_retries_is_recorded(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst")
    faults_for("dst").inject(TransientError("HTTP 500 Internal Server Error"), times=8, op="upsert")
    with pytest.raises(TransientError):
        m.run()
    errors = m.status().errors
    assert sum(errors.values()) == 8, errors


def test_transient_read_failures_are_retried_like_writes(tmp_path, source, retry_sleeps):
    """Faults on the source's scans and on the target's reads (sampled validation fetches,
    verification scans) as well as its writes: each is retried where it happened, so a
    single run completes."""
    src_f = faults_for("src")
    src_f.fail_rate, src_f.ops, src_f.rng = 0.3, frozenset({"scan"}), random.Random(7)
    m = migration(tmp_path, "memory://dst?fail_rate=0.3&fail_ops=upsert,scan,fetch&seed=5",
                  sample_rate=0.5)
    st = m.run()
    dst_f = faults_for("dst")
    assert src_f.injected > 0 and dst_f.calls.get("fetch", 0) > 0 and dst_f.calls.get("scan", 0) > 0
    assert len(retry_sleeps) == src_f.injected + dst_f.injected  # every one retried
    assert_ends_equal(st, source)


def test_transient_failures_while_planning_and_creating_the_target_are_retried(
        tmp_path, source, retry_sleeps):
    """The target's describe() while planning and while preparing it, and a create whose
    acknowledgement was lost (the collection exists, the call failed), are retried: one run
    completes, the collection is created once and is known to be vmkit's."""
    f = faults_for("dst")
    f.inject(TransientError("HTTP 503 Service Unavailable"), times=2, op="describe")
    m = migration(tmp_path, "memory://dst")
    assert f.calls["describe"] == 3 and len(retry_sleeps) == 2
    f.inject(TransientError("HTTP 503 Service Unavailable"), op="describe")
    f.inject(TransientError("connection reset by peer"), op="create", after_effect=True)
    st = m.run()
    assert f.calls["create"] == 1 and len(retry_sleeps) == 4
    assert m.store.get("m").created_target
    assert st.errors.get("transient") == 2  # the two during the run (planning has no row yet)
    assert_ends_equal(st, source)


# -- hangs, resets, per-object failures -------------------------------------------------------

def test_hangs_past_the_client_timeout_are_retried(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst?hang_rate=0.15&hang_ms=20&seed=7")
    st, _ = drive(m, source, "memory://dst")
    f = faults_for("dst")
    assert f.sleeps and f.calls["upsert"] == BATCHES + f.injected
    assert "timed out" in " ".join(st.last_errors)
    assert_ends_equal(st, source)


def test_connection_reset_after_the_write_was_applied(tmp_path, source, retry_sleeps):
    """The write lands but its acknowledgement is lost: the retry re-sends the same upsert
    (idempotent by id), nothing is counted twice."""
    m = migration(tmp_path, "memory://dst?reset_rate=0.3&seed=8")
    st, _ = drive(m, source, "memory://dst")
    f = faults_for("dst")
    assert f.injected > 0 and f.calls["upsert"] == BATCHES + f.injected
    assert "connection reset" in " ".join(st.last_errors)
    assert_ends_equal(st, source)


@pytest.mark.parametrize("partial", [False, True], ids=["batch-refused", "per-object"])
def test_refused_records_are_dead_lettered_and_the_rest_ends_equal(tmp_path, retry_sleeps, partial):
    """InvalidData on some records (the whole request refused, or Weaviate-style per-object
    failures inside an accepted batch whose other objects were written): the culprits go to
    the dead-letter table with the server's reason, everything else ends equal, under 10%
    transient faults as well."""
    src = snapshot(memory_source(n=N, flag_every=97))
    bad = {k for k, (_, meta, _) in src.items() if meta.get("bad")}
    flag = "&invalid_partial=1" if partial else ""
    # One record in 97 is refused, just over the breaker's default 1%: raised to let the run
    # through (the breaker has tests of its own).
    m = migration(tmp_path, f"memory://dst?invalid_field=bad{flag}&fail_rate=0.1&seed=9",
                  max_reject_rate=0.02)
    st, _ = drive(m, src, "memory://dst")
    assert st.state == "completed" and st.verification == "passed"
    assert snapshot("memory://dst") == {k: v for k, v in src.items() if k not in bad}
    rows = m.store.query("SELECT namespace, record_id, field, reason FROM rejections")
    assert {(ns, rid) for ns, rid, _, _ in rows} == bad and len(rows) == len(bad)
    assert all(f == "record" and "'bad' is not allowed" in r for _, _, f, r in rows)
    assert st.records_read == N == st.records_written + st.records_rejected
    assert st.records_rejected == len(bad) and st.batches == BATCHES
    assert "terminal" not in st.errors  # refusals are dead letters, not run errors


# -- terminal errors fail fast ------------------------------------------------------------------

@pytest.mark.parametrize("store,op,exc", [
    ("dst", "upsert", TerminalError("HTTP 400 Bad Request: malformed body")),
    ("dst", "upsert", TerminalError("HTTP 401 Unauthorized")),
    ("src", "scan", TerminalError("HTTP 404 Not Found: collection")),
    ("dst", "fetch", TerminalError("HTTP 403 Forbidden")),
], ids=["upsert-400", "upsert-401", "scan-404", "validation-fetch-403"])
def test_terminal_errors_are_not_retried(tmp_path, source, retry_sleeps, store, op, exc):
    m = migration(tmp_path, "memory://dst", sample_rate=1.0)
    m.run(max_batches=2)
    f = faults_for(store)
    calls = f.calls.get(op, 0)
    f.inject(exc, op=op)
    with pytest.raises(TerminalError) as err:
        m.run()
    assert err.value is exc and not isinstance(err.value, InvalidData)
    assert f.calls[op] - calls <= 2  # the failed call, and at most one read-ahead; never retried
    assert retry_sleeps == []
    assert_resumable(m.store, "m")
    st = m.run()
    assert_ends_equal(st, source)


def test_terminal_write_error_is_recorded_once(tmp_path, source, retry_sleeps):
    m = migration(tmp_path, "memory://dst")
    faults_for("dst").inject(TerminalError("HTTP 400 Bad Request"), op="upsert")
    with pytest.raises(TerminalError):
        m.run()
    assert faults_for("dst").calls["upsert"] == 1
    st = m.status()
    assert st.errors == {"terminal": 1} and "HTTP 400" in st.last_errors[0]
    assert st.batches == 0 and snapshot("memory://dst") == {}


# -- through the Pinecone emulator (real SDK, real HTTP) ---------------------------------------

@pytest.fixture
def pinecone(monkeypatch):
    pytest.importorskip("pinecone")
    from emulators.pinecone_emulator import PineconeEmulator
    from pinecone._internal import http_client

    sdk_sleeps: list[float] = []
    monkeypatch.setattr(http_client, "_retry_sleep", sdk_sleeps.append)
    # The SDK keeps a process-wide retry budget per host: earlier tests must not drain ours.
    monkeypatch.setattr(http_client, "_budget_registry", http_client._BudgetRegistry())
    with PineconeEmulator(api_key="pcsk_reliability-7e2d", seed=11) as emu:
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.setenv("PINECONE_API_KEY", emu.api_key)
        emu.create_index("dst", 8, "dotproduct")
        yield emu, sdk_sleeps


def pinecone_records() -> dict:
    from vmkit.connectors import connect

    with connect("pinecone://dst") as conn:
        return {k: v for k, v in _rows(conn)}


def _rows(conn):
    import numpy as np

    cursor = None
    while True:
        batch, cursor = conn.scan(cursor, 500)
        for rid, vec, meta, _ in batch.rows():
            yield (batch.namespace, rid), (np.asarray(vec, np.float32).tobytes(), meta, None)
        if cursor is None:
            return


def small_source() -> dict:
    return snapshot(memory_source(n=300))


def test_pinecone_429_with_retry_after(tmp_path, retry_sleeps, pinecone):
    emu, sdk_sleeps = pinecone
    src = small_source()
    m = migration(tmp_path, "pinecone://dst", freshness_s=0)
    emu.faults.inject(429, retry_after=7, times=9, op="upsert")  # more than the SDK's 4 tries, twice
    st = m.run()
    assert retry_sleeps == [7.0, 7.0]  # vmkit waited exactly what the server asked for
    assert len(sdk_sleeps) == 7 and all(s >= 7 for s in sdk_sleeps)
    assert st.state == "completed" and st.verification == "passed" and st.errors == {"transient": 2}
    assert pinecone_records() == src


def test_pinecone_429_without_retry_after_backs_off(tmp_path, retry_sleeps, pinecone):
    emu, sdk_sleeps = pinecone
    src = small_source()
    m = migration(tmp_path, "pinecone://dst", freshness_s=0, retry_initial_s=0.2)
    emu.faults.inject(429, retry_after=None, times=12, op="upsert")
    st = m.run()
    assert len(retry_sleeps) == 3
    for k, s in enumerate(retry_sleeps):  # vmkit's own exponential back-off
        assert 0.2 * 2**k <= s <= 0.2 * 2**k + 0.2
    assert st.state == "completed" and st.verification == "passed"
    assert pinecone_records() == src


def test_pinecone_5xx_with_ghost_writes(tmp_path, retry_sleeps, pinecone):
    """30% of data-plane requests fail with 500/503, half of the failed writes applied
    anyway: the run completes or stops resumably, and ends equal."""
    emu, _ = pinecone
    src = small_source()
    emu.faults.rate_5xx, emu.faults.ghost_writes = 0.3, 0.5
    m = migration(tmp_path, "pinecone://dst", freshness_s=0, batch_size=50)
    for _ in range(50):
        try:
            st = m.run()
            break
        except TransientError:
            assert_resumable(m.store, "m")
    else:
        raise AssertionError("not completed after 50 resumes")
    assert emu.faults.injected > 0
    assert st.state == "completed" and st.verification == "passed"
    emu.faults.clear()
    assert pinecone_records() == src
