"""Counts reconcile (issue 19, item 1): per source namespace, the records verification reads
must equal the source's own count, before and after the scan.

The broken sources below drop or repeat a record in their scan. The target is written from
that same scan, so "target == map(source)" holds and only the counts can tell.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from copying import copy_through as copy_through_plan

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import MemoryConnector
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, Rejection
from vmkit.migration.status import namespace_count_lines
from vmkit.migration.verification import Verification, source_counts, verify


def make_source(name: str = "src", sizes: dict[str, int] | None = None, dim: int = 8) -> str:
    conn = connect(f"memory://{name}")
    conn.create(TargetSpec(name, dim, "dot"))
    rng = np.random.default_rng(1)
    for ns, n in (sizes or {"a": 100, "b": 50}).items():
        conn.upsert(RecordBatch([f"r{i}" for i in range(n)], rng.standard_normal((n, dim)),
                                [{"i": i} for i in range(n)], namespace=ns))
    return f"memory://{name}"


class DroppingSource(MemoryConnector):
    """A scan that loses record 'r37' of namespace 'a'."""

    def scan(self, cursor, limit):
        batch, nxt = super().scan(cursor, limit)
        if batch.namespace == "a" and "r37" in batch.ids:
            batch = batch.take([i for i, rid in enumerate(batch.ids) if rid != "r37"])
        return batch, nxt


class RepeatingSource(MemoryConnector):
    """A scan that hands record 'r5' of namespace 'b' over twice (in two batches)."""

    def scan(self, cursor, limit):
        batch, nxt = super().scan(cursor, limit)
        if batch.namespace == "b" and "r5" not in batch.ids and len(batch):
            extra = super().fetch(["r5"], "b")
            batch = RecordBatch.concat([batch, extra])
        return batch, nxt


class UnreadableSource(MemoryConnector):
    """Record 'r3' of namespace 'a' is listed but cannot be handed over."""

    def scan(self, cursor, limit):
        batch, nxt = super().scan(cursor, limit)
        if batch.namespace == "a" and "r3" in batch.ids:
            batch = batch.take([i for i, rid in enumerate(batch.ids) if rid != "r3"])
            batch.rejected.append(Rejection("r3", "fetch never returned it", SOURCE_UNREADABLE, "a"))
        return batch, nxt


def copy_through(source, target_uri: str):
    """Plan and write the target from the source's own scan (as a migration would)."""
    target = connect(target_uri)
    return target, copy_through_plan(source, target, scan_size=30)


def test_a_faithful_copy_reconciles_every_namespace():
    source = MemoryConnector(make_source())
    target, the_plan = copy_through(source, "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert result.passed, str(result)
    assert result.namespace_counts == {"a": {"read": 100, "source": 100, "source_before": 100},
                                       "b": {"read": 50, "source": 50, "source_before": 50}}
    assert result.count_mismatches == []


def test_a_scan_that_drops_a_record_fails_naming_namespace_and_counts():
    make_source()
    source = DroppingSource("memory://src")
    target, the_plan = copy_through(source, "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert not result.missing and not result.extra and not result.mismatched  # the copy equals the scan
    assert not result.passed
    assert result.count_mismatches == [("a", 100, 99)]
    text = str(result)
    assert "namespace 'a': shortfall, source count 100, read 99" in text, text
    assert result.to_dict()["count_mismatches"] == [["a", 100, 99]]


def test_a_scan_that_repeats_a_record_fails_naming_namespace_and_counts():
    make_source()
    source = RepeatingSource("memory://src")
    target, the_plan = copy_through(source, "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert not result.missing and not result.extra and not result.mismatched
    assert not result.passed
    assert result.count_mismatches == [("b", 50, 51)]
    assert "namespace 'b': excess, source count 50, read 51" in str(result)


def test_unreadable_records_count_as_read_and_are_listed():
    make_source()
    source = UnreadableSource("memory://src")
    target, the_plan = copy_through(source, "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert result.passed, str(result)  # read = 99 mapped + 1 unreadable = the source's 100
    assert result.unreadable == [("a", "r3")]
    assert result.namespace_counts["a"]["read"] == 100
    assert result.to_dict()["unreadable"] == [["a", "r3"]]
    assert "unreadable" in str(result)


class SettlingSource(MemoryConnector):
    """An eventually consistent source whose count per namespace settles after a few reads."""

    readings = [{"a": 90}, {"a": 97}, {"a": 100}, {"a": 100}]

    def __init__(self, uri):
        super().__init__(uri)
        self.capabilities = replace(self.capabilities, eventually_consistent=True)
        self.calls = 0

    def namespace_counts(self):
        self.calls += 1
        return self.readings[min(self.calls, len(self.readings)) - 1]


def test_an_eventually_consistent_count_is_read_until_stable(caplog):
    make_source(sizes={"a": 100})
    source = SettlingSource("memory://src")
    with caplog.at_level("INFO", logger="vmkit.migration.verification"):
        assert source_counts(source, settle_s=0.0) == {"a": 100}
    assert source.calls == 4
    assert "stable after 4 readings" in caplog.text


def test_a_count_that_never_settles_is_bounded(caplog):
    make_source(sizes={"a": 100})
    source = SettlingSource("memory://src")
    source.readings = [{"a": n} for n in range(1, 50)]
    with caplog.at_level("WARNING", logger="vmkit.migration.verification"):
        assert source_counts(source, settle_s=0.0) == {"a": 5}
    assert source.calls == 5 and "still changing after 5 readings" in caplog.text


def test_a_count_that_changes_during_the_scan_fails():
    make_source(sizes={"a": 100})
    source = SettlingSource("memory://src")
    source.capabilities = replace(source.capabilities, eventually_consistent=False)
    source.readings = [{"a": 100}, {"a": 101}]
    target, the_plan = copy_through(MemoryConnector("memory://src"), "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert result.count_mismatches == [("a", 101, 100)]
    assert "changed during the scan (before 100)" in str(result)


def test_status_and_report_show_read_vs_source_count_per_namespace(tmp_path):
    make_source()
    m = Migration.create("memory://src", "memory://dst", migration_id="c", state=tmp_path / "s.db")
    st = m.run()
    assert st.state == "completed"
    text = str(st)
    assert "records read vs source count per namespace: 2 of 2 reconcile" in text, text
    assert "read        100  source        100" in text
    from vmkit.notebook.report import Report

    rep = Report.from_store(m.store, "c")
    assert rep.namespace_counts[["namespace", "read", "source"]].values.tolist() == [["a", 100, 100], ["b", 50, 50]]
    assert "records read vs source count" in rep._repr_html_()
    m.close()


def test_count_lines_put_mismatches_first():
    v = Verification(namespace_counts={"a": {"read": 5, "source": 5, "source_before": 5},
                                       "z": {"read": 4, "source": 5, "source_before": 5}})
    lines = namespace_count_lines(v.to_dict())
    assert "1 of 2 reconcile" in lines[0] and lines[1].strip().startswith("z") and "MISMATCH" in lines[1]


@pytest.mark.parametrize("kind", ["dropped", "repeated"])
def test_html_names_the_namespace(kind):
    make_source()
    source = (DroppingSource if kind == "dropped" else RepeatingSource)("memory://src")
    target, the_plan = copy_through(source, "memory://dst")
    html = verify(source, target, the_plan, scan_size=30)._repr_html_()
    assert "FAILED" in html and "namespace &#x27;" in html


class OnlyRejectedBatchSource(MemoryConnector):
    """A scan whose last page holds no record it could represent, only a rejection."""

    def scan(self, cursor, limit):
        if cursor == "tail":
            batch = RecordBatch.empty(8, "a")
            batch.rejected.append(Rejection("bad", "vector of dimension 3 in an 8-d collection", "vector", "a"))
            return batch, None
        batch, nxt = super().scan(cursor, limit)
        return batch, nxt if nxt is not None else "tail"

    def namespace_counts(self):
        counts = super().namespace_counts()
        return {**counts, "a": counts["a"] + 1}


def test_a_page_of_rejections_only_counts_as_read():
    make_source()
    source = OnlyRejectedBatchSource("memory://src")
    target, the_plan = copy_through(MemoryConnector("memory://src"), "memory://dst")
    result = verify(source, target, the_plan, scan_size=30)
    assert result.passed, str(result)
    assert result.namespace_counts["a"] == {"read": 101, "source": 101, "source_before": 101}
    assert result.rejected == 1
