"""The batch loop over the memory connector: retries, fail-fast, stop/resume, dead letters,
auto-rollback, idempotent re-runs."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import MemoryConnector, faults_for
from vmkit.core.errors import AutoRolledBack, IllegalTransition, TerminalError
from vmkit.core.interpreter import SWITCH_INTERVAL_S
from vmkit.core.records import RecordBatch

FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}


def make_source(n: int = 1000, dim: int = 8, name: str = "src", namespaces=("",)) -> str:
    conn = connect(f"memory://{name}")
    conn.create(TargetSpec(name, dim, "cosine"))
    rng = np.random.default_rng(1)
    for ns in namespaces:
        conn.upsert(RecordBatch(
            ids=[f"r{i}" for i in range(n)], vectors=rng.standard_normal((n, dim)),
            metadata=[{"i": i, "bad": i % 250 == 7} for i in range(n)], namespace=ns))
    return f"memory://{name}"


def run(tmp_path, source: str, target: str, mid: str = "m", **opts):
    m = Migration.create(source, target, migration_id=mid, state=tmp_path / "s.db", **{**FAST, **opts})
    return m, m.run()


def test_copies_everything_and_balances(tmp_path):
    m, st = run(tmp_path, make_source(namespaces=("", "a", "b")), "memory://dst", batch_size=300)
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_read == 3000 == st.records_written and st.balanced
    assert connect("memory://dst").describe().namespaces == {"": 1000, "a": 1000, "b": 1000}


def test_transient_failures_are_retried(tmp_path):
    m, st = run(tmp_path, make_source(), "memory://dst?fail_rate=0.3&seed=3", batch_size=100)
    assert st.state == "completed" and st.verification == "passed"
    assert st.errors.get("transient", 0) == faults_for("dst").injected > 0
    assert st.records_written == 1000


def test_terminal_failure_stops_resumably(tmp_path):
    source = make_source()
    m = Migration.create(source, "memory://dst", migration_id="t", state=tmp_path / "s.db",
                         batch_size=100, **FAST)
    m.run(max_batches=3)
    faults_for("dst").terminal_rate = 1.0
    with pytest.raises(TerminalError):
        m.run()
    assert faults_for("dst").calls["upsert"] == 4  # the terminal error was not retried
    st = m.status()
    assert st.state == "in_progress" and st.batches == 3 and st.errors["terminal"] == 1
    faults_for("dst").terminal_rate = 0.0
    st = m.run()
    assert st.state == "completed" and st.records_read == 1000 and st.batches == 10


def test_stop_then_resume_continues_from_the_checkpoint(tmp_path):
    source = make_source()
    m = Migration.create(source, "memory://dst", migration_id="s", state=tmp_path / "s.db", batch_size=100)
    m.run(on_batch=lambda p: m.stop() if p.batches == 4 else None)
    st = m.status()
    assert st.state == "in_progress" and st.batches == 4 and connect("memory://dst").count() == 400
    calls_before = faults_for("dst").calls["upsert"]
    st = Migration.open("s", tmp_path / "s.db").run()
    assert st.state == "completed" and st.batches == 10
    assert faults_for("dst").calls["upsert"] - calls_before == 6  # nothing redone


def test_completed_migration_is_left_unchanged(tmp_path):
    m, st = run(tmp_path, make_source(), "memory://dst")
    calls = dict(faults_for("dst").calls)
    again = m.run()
    assert again.state == "completed" and again.batches == st.batches
    assert faults_for("dst").calls == calls


def test_refused_records_are_dead_lettered_by_bisection(tmp_path):
    m, st = run(tmp_path, make_source(), "memory://dst?invalid_field=bad", batch_size=500)
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_rejected == 4 and st.records_written == 996 and st.balanced
    rows = m.store.query("SELECT record_id, field, reason FROM rejections ORDER BY record_id")
    assert [r[0] for r in rows] == ["r257", "r507", "r7", "r757"]
    assert all(r[1] == "record" and "'bad' is not allowed" in r[2] for r in rows)


def test_sampled_validation_failures_roll_back(tmp_path):
    source = make_source()
    m = Migration.create(source, "memory://dst?corrupt_rate=0.5", migration_id="c",
                         state=tmp_path / "s.db", batch_size=100, sample_rate=1.0)
    with pytest.raises(AutoRolledBack):
        m.run()
    st = m.status()
    assert st.state == "rolled_back" and st.validation["failures"] > 0
    with pytest.raises(IllegalTransition):
        m.store.transition("c", "in_progress")


def test_rollback_drops_only_what_vmkit_created(tmp_path):
    source = make_source()
    connect("memory://existing").create(TargetSpec("existing", 8, "cosine"))
    for target, dropped in (("memory://fresh", True), ("memory://existing", False)):
        m = Migration.create(source, target, migration_id=target, state=tmp_path / "s.db", batch_size=100)
        m.run(max_batches=2)
        st = m.rollback(drop_target=True)
        assert st.state == "rolled_back"
        assert (connect(target).describe() is None) is dropped


def test_skipping_verification_is_shown(tmp_path):
    m, st = run(tmp_path, make_source(), "memory://dst", verify=False)
    assert st.state == "completed" and st.verification == "skipped"
    assert "full verification: skipped" in str(st)


@pytest.mark.parametrize("tune", [True, False])
def test_a_run_and_its_verification_tune_the_interpreter_unless_told_not_to(tmp_path, monkeypatch, tune):
    seen: set[float] = set()
    scan = MemoryConnector.scan

    def noting(self, *args, **kwargs):
        seen.add(round(sys.getswitchinterval(), 6))
        return scan(self, *args, **kwargs)

    before = sys.getswitchinterval()
    monkeypatch.setattr(MemoryConnector, "scan", noting)
    m, st = run(tmp_path, make_source(n=300), "memory://dst", batch_size=100, tune_interpreter=tune)
    assert st.state == "completed" and st.verification == "passed"
    # The copy and its verification both scan the source.
    assert seen == {round(min(before, SWITCH_INTERVAL_S) if tune else before, 6)}
    seen.clear()
    m.verify()
    assert seen == {round(min(before, SWITCH_INTERVAL_S) if tune else before, 6)}
    assert sys.getswitchinterval() == before and gc.get_freeze_count() == 0


def test_a_sampled_batch_rereads_at_most_sample_records_the_same_ones_on_every_run(tmp_path):
    from vmkit.migration.validate import sample_rows

    m, st = run(tmp_path, make_source(n=3000), "memory://dst", batch_size=1500, sample_rate=1.0, sample_records=200)
    assert st.state == "completed"
    checked = [n for (n,) in m.store.query("SELECT n FROM validations "
                                          "WHERE migration_id=? ORDER BY seq", m.id)]
    assert checked == [200, 200]  # two batches, each sampled, 200 of its 1500 records re-read
    batch, _ = connect("memory://src").scan(None, 1500)
    once, again = sample_rows(batch, "m", 2, 200), sample_rows(batch, "m", 2, 200)
    assert once.ids == again.ids and len(set(once.ids)) == 200 and set(once.ids) <= set(batch.ids)
    assert sample_rows(batch, "m", 3, 200).ids != once.ids  # another batch, other records
    assert sample_rows(batch, "m", 2, 0) is batch and sample_rows(batch, "m", 2, 1500) is batch
