"""A run never ends "completed" on a systemic refusal, unreadable source records or a failed
verification: systemic errors stop it before anything is dead-lettered, the breaker stops a run
whose refusal rate passes its bound, a completion with rejections says so (exit 3), and repair
copies again what verification found wrong."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import vmkit.connectors as registry
from vmkit import Migration, TargetSpec, connect
from vmkit.cli import app
from vmkit.connectors.memory import MemoryConnector, faults_for
from vmkit.core.errors import BreakerTripped, InvalidData, SystemicRefusal
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, Rejection

FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}
N, DIM = 3000, 8

# Ids the flaky:// source lists but cannot hand over (a fetch that never returns them).
UNREADABLE: set[str] = set()


class FlakySource(MemoryConnector):
    """memory://NAME read as flaky://NAME: the ids in UNREADABLE come back as source_unreadable
    rejections, as a source connector reports a listed id its fetch never returned."""

    scheme = "flaky"

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        batch, nxt = super().scan(cursor, limit)
        bad = [i for i, rid in enumerate(batch.ids) if rid in UNREADABLE]
        if not bad:
            return batch, nxt
        out = batch.take([i for i in range(len(batch)) if i not in set(bad)])
        out.namespace = batch.namespace
        out.rejected = batch.rejected + [
            Rejection(batch.ids[i], "listed, but fetch did not return it after 5 attempts",
                      SOURCE_UNREADABLE, batch.namespace) for i in bad]
        return out, nxt


class LossySource(MemoryConnector):
    """memory://NAME read as lossy://NAME by a scan with a bug: it drops one record in 100
    (ids ending in 42) and hands r00007 over twice, silently."""

    scheme = "lossy"

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        batch, nxt = super().scan(cursor, limit)
        keep = [i for i, rid in enumerate(batch.ids) if not str(rid).endswith("42")]
        keep += [i for i, rid in enumerate(batch.ids) if rid == "r00007"]
        out = batch.take(keep)
        out.namespace = batch.namespace
        return out, nxt


@pytest.fixture(autouse=True)
def flaky(monkeypatch):
    monkeypatch.setitem(registry._BUILTIN, "flaky", f"{__name__}:FlakySource")
    monkeypatch.setitem(registry._BUILTIN, "lossy", f"{__name__}:LossySource")
    UNREADABLE.clear()
    yield
    UNREADABLE.clear()


def make_source(name: str = "src", bad_every: int = 0) -> str:
    conn = connect(f"memory://{name}")
    conn.create(TargetSpec(name, DIM, "cosine"))
    rng = np.random.default_rng(5)
    conn.upsert(RecordBatch(ids=[f"r{i:05d}" for i in range(N)], vectors=rng.standard_normal((N, DIM)),
                            metadata=[{"i": i, "bad": bool(bad_every) and i % bad_every == 3} for i in range(N)]))
    return f"memory://{name}"


def create(tmp_path, source: str, target: str, mid: str = "m", **opts: Any) -> Migration:
    return Migration.create(source, target, migration_id=mid, state=tmp_path / "s.db",
                            **{"batch_size": 100, **FAST, **opts})


def cli(*args: str) -> Any:
    """The CLI in this process (where the memory stores live); its logging set-up undone."""
    logger = logging.getLogger("vmkit")
    handlers, level = list(logger.handlers), logger.level
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        logger.handlers, logger.level = handlers, level


# -- systemic refusals stop; they are not dead-lettered -----------------------------------------

@pytest.mark.parametrize("batch_size", [1000, 50], ids=["run-of-100", "whole-batch"])
def test_a_collection_level_refusal_stops_at_once_without_dead_letters(tmp_path, batch_size):
    """Every write refused for one reason (the collection takes another dimension): the run
    stops with one line, in_progress, nothing dead-lettered, nothing committed."""
    make_source()
    m = create(tmp_path, "memory://src", "memory://dst", batch_size=batch_size)
    connect("memory://dst").create(TargetSpec("dst", DIM, "cosine"))
    faults_for("dst").inject(InvalidData("Wrong input: Vector dimension error: expected dim: 16, got 8"),
                             times=100_000, op="upsert")
    with pytest.raises(SystemicRefusal, match="Vector dimension error"):
        m.run()
    st = m.status()
    assert st.state == "in_progress" and st.batches == 0 and st.records_rejected == 0
    # Stopped after a run of 100 refusals (about 2 requests each, halves included), not after
    # bisecting all 1,000 records (2n-1 = 1,999 requests).
    assert faults_for("dst").calls["upsert"] <= 300
    assert any("SystemicRefusal" in e for e in st.last_errors)
    faults_for("dst").clear()
    assert m.run().state == "completed"  # resumable once the cause is gone


def test_the_cli_prints_one_line_for_a_systemic_refusal(tmp_path):
    make_source()
    connect("memory://dst").create(TargetSpec("dst", DIM, "cosine"))
    faults_for("dst").inject(InvalidData("collection schema mismatch"), times=100_000, op="upsert")
    out = cli("migrate", "start", "--source", "memory://src", "--target", "memory://dst", "--id", "sys",
              "--into-nonempty-target", "--no-progress", "--state", str(tmp_path / "s.db"))
    assert out.exit_code == 2
    errors = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "collection schema mismatch" in errors[0]
    assert "Traceback" not in out.output


# -- the breaker ----------------------------------------------------------------------------------

def test_record_level_refusals_at_2_percent_trip_the_breaker(tmp_path):
    """Refusals by the target at 2% (one record in 50) pass the default 1%: the run stops
    resumably after the batches that showed it, their refusals dead-lettered."""
    make_source(bad_every=50)
    m = create(tmp_path, "memory://src", "memory://dst?invalid_field=bad")
    with pytest.raises(BreakerTripped, match="over max_reject_rate 1.0%"):
        m.run()
    st = m.status()
    assert st.state == "in_progress" and 0 < st.batches < N // 100
    assert st.records_rejected == st.records_read - st.records_written > 0
    assert st.errors.get("breaker") == 1
    m.update_options(max_reject_rate=0.05)  # the user accepts more, and resumes
    st = m.run()
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_rejected == N // 50 and st.balanced


def test_refusals_under_the_bound_do_not_trip_it(tmp_path):
    make_source(bad_every=250)  # 0.4%
    m = create(tmp_path, "memory://src", "memory://dst?invalid_field=bad")
    assert m.run().state == "completed"


def test_completed_with_rejections_says_so_first_and_exits_3(tmp_path):
    make_source(bad_every=50)
    out = cli("migrate", "start", "--source", "memory://src", "--target", "memory://dst?invalid_field=bad",
              "--id", "rej", "--batch-size", "100", "--max-reject-rate", "0.05", "--no-progress",
              "--state", str(tmp_path / "s.db"))
    assert out.exit_code == 3, out.output
    assert f"migration rej: completed with {N // 50} rejected" in out.output
    status = cli("status", "--id", "rej", "--state", str(tmp_path / "s.db"))
    assert status.output.splitlines()[0] == f"migration rej: completed with {N // 50} rejected"


# -- unreadable source records ------------------------------------------------------------------

def test_unreadable_source_records_keep_the_migration_from_completed(tmp_path):
    make_source()
    UNREADABLE.update({"r00007", "r02500"})
    m = create(tmp_path, "flaky://src", "memory://dst")
    st = m.run()
    assert st.state == "in_progress" and st.scan_done and st.verification == "passed"
    rows = m.store.query("SELECT namespace, record_id, field FROM rejections")
    assert sorted(rows) == [("", "r00007", SOURCE_UNREADABLE), ("", "r02500", SOURCE_UNREADABLE)]
    assert st.records_read == N == st.records_written + 2
    assert "2 source records could not be read" in st.last_errors[0]
    out = cli("migrate", "resume", "--id", "m", "--no-progress", "--state", str(tmp_path / "s.db"))
    assert out.exit_code == 1 and "could not be read" in out.output
    out = cli("migrate", "resume", "--id", "m", "--accept-unreadable", "--no-progress",
              "--state", str(tmp_path / "s.db"))
    assert out.exit_code == 3, out.output
    assert m.status().state == "completed"


def test_repair_reads_unreadable_records_again(tmp_path):
    make_source()
    UNREADABLE.add("r00042")
    m = create(tmp_path, "flaky://src", "memory://dst")
    assert m.run().state == "in_progress"
    UNREADABLE.clear()  # the source hands it over now
    outcome = m.repair()
    assert outcome.recovered == 1 and outcome.copied == 1 and outcome.verification.passed
    st = m.status()
    assert st.state == "completed" and st.records_rejected == 0 and st.balanced
    assert len(connect("memory://dst").fetch(["r00042"])) == 1


# -- repair after a failed verification ---------------------------------------------------------

def test_repair_copies_missing_and_mismatched_and_deletes_extra(tmp_path):
    make_source()
    m = create(tmp_path, "memory://src", "memory://dst", verify=True)
    m.run(max_batches=N // 100 - 1)
    dst = connect("memory://dst")
    dst.delete(["r00010"])  # lost by the target
    bent = dst.fetch(["r00020"])
    bent.vectors *= 1.01
    dst.upsert(bent)  # changed behind vmkit's back
    stray = dst.fetch(["r00030"])
    stray.ids = ["stray"]
    dst.upsert(stray)
    st = m.run()
    assert st.state == "in_progress" and st.verification == "failed"
    out = cli("migrate", "repair", "--id", "m", "--state", str(tmp_path / "s.db"))
    assert out.exit_code == 0, out.output
    assert "3 records copied again" not in out.output  # two copied, one deleted
    assert "2 records copied again" in out.output and "1 extra deleted" in out.output
    st = m.status()
    assert st.state == "completed" and st.verification == "passed"
    src = connect("memory://src")
    for rid in ("r00010", "r00020"):
        np.testing.assert_array_equal(dst.fetch([rid]).vectors, src.fetch([rid]).vectors)
    assert len(dst.fetch(["stray"])) == 0


def test_repair_leaves_extra_records_in_a_target_vmkit_did_not_create(tmp_path):
    make_source()
    connect("memory://dst").create(TargetSpec("dst", DIM, "cosine"))
    theirs = connect("memory://src").fetch(["r00001"])
    theirs.ids = ["theirs"]
    connect("memory://dst").upsert(theirs)
    m = create(tmp_path, "memory://src", "memory://dst")
    assert m.run().verification == "failed"
    outcome = m.repair()
    assert outcome.extra_left == 1 and outcome.extra_deleted == 0
    assert len(connect("memory://dst").fetch(["theirs"])) == 1
    assert m.status().state == "in_progress"


def test_a_scan_that_drops_and_repeats_records_never_completes(tmp_path):
    """The copy and its verification read through the same buggy scan, so "target equals
    map(source)" holds; the source's own count does not: the run ends in_progress, naming the
    namespace, the source's count and the count read."""
    make_source()
    m = create(tmp_path, "lossy://src", "memory://dst")
    st = m.run()
    assert st.state == "in_progress" and st.verification == "failed"
    detail = st.verification_detail
    assert [tuple(c) for c in detail["count_mismatches"]] == [("", N, N - N // 100 + 1)]
    shown = [line.split() for line in str(st).splitlines() if "MISMATCH" in line]
    assert len(shown) == 1 and str(N) in shown[0] and str(N - N // 100 + 1) in shown[0]
