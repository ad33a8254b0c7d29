"""Report data from the state store, the re-read sample, plot_* functions and saved PNGs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from vmkit import Migration, TargetSpec, connect
from vmkit.core.records import RecordBatch
from vmkit.notebook.report import PLOTTERS, Report, plot_throughput, report

N, BATCH = 1000, 50
FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}


def make_source() -> str:
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(5)
    src.upsert(RecordBatch(
        ids=[f"r{i}" for i in range(N)], vectors=rng.standard_normal((N, 8)),
        metadata=[{"i": i, "bad": i % 250 == 7, "tag": "x"} for i in range(N)]))
    return "memory://src"


@pytest.fixture
def done(tmp_path) -> Migration:
    """A completed run with 4 refused records (dead-lettered) and injected transient errors."""
    m = Migration.create(make_source(), "memory://dst?invalid_field=bad&fail_rate=0.2&seed=4",
                         migration_id="r", state=tmp_path / "s.db", batch_size=BATCH, sample_rate=0.5, **FAST)
    assert m.run().state == "completed"
    return m


def test_tables_come_from_the_state_store(done: Migration) -> None:
    rep = Report.from_store(done.store, "r")
    assert list(rep.batches["seq"]) == list(range(1, N // BATCH + 1))
    assert rep.batches["read"].sum() == N and (rep.batches["records_per_s"] > 0).all()
    assert len(rep.validations) == rep.status.validation["batches"] > 0
    # one reason, once the record ids are taken out of the server's messages
    assert rep.rejections.to_dict("records") == [
        {"reason": "refused by target: record …: field 'bad' is not allowed", "field": "record", "count": 4}]
    assert (rep.errors["kind"] == "transient").sum() > 0
    assert rep.completeness["field"].tolist() == ["(all fields, sampled validation)"]
    assert rep.cosine_sample is None and rep.threshold == 0.98


def test_sample_gives_per_record_cosine_and_per_field_completeness(done: Migration) -> None:
    rep = report(done, sample=200)
    n = len(rep.cosine_sample)  # batch 1 holds r7, which the target refused: it is left out
    assert 190 <= n <= 200 and float(rep.cosine_sample.min()) > 0.9999
    c = rep.completeness.set_index("field")
    assert set(c.index) == {"i", "bad", "tag"} and (c["completeness"] == 1.0).all()
    assert (c["records"] == n).all()


def test_sample_sees_damage_in_the_target(tmp_path) -> None:
    m = Migration.create(make_source(), "memory://dst?corrupt_rate=0.5&seed=1", migration_id="bad",
                         state=tmp_path / "s.db", batch_size=BATCH, auto_rollback_rate=None, **FAST)
    assert m.run().verification == "failed"
    dst = connect("memory://dst")
    rec = dst.fetch(["r0"])
    rec.metadata[0].pop("tag")  # a dropped key, behind vmkit's back
    dst.upsert(rec)
    rep = report(m, sample=N)
    assert (rep.cosine_sample < rep.threshold).sum() > 100
    c = rep.completeness.set_index("field")["completeness"]
    assert c["tag"] == pytest.approx(1 - 1 / len(rep.cosine_sample)) and c["i"] == 1.0


def _has_data(ax) -> bool:
    bars = [p for p in ax.patches if p.get_height() * p.get_width() > 0]
    lines = [ln for ln in ax.get_lines()  # the threshold line is not data
             if len(ln.get_xdata()) and not ln.get_label().startswith("threshold")]
    return bool(bars or lines)


def test_every_plot_draws_data(done: Migration) -> None:
    rep = report(done, sample=200)
    for name, plot in PLOTTERS.items():
        ax = plot(rep, Figure().add_subplot())
        assert _has_data(ax), name
    hist = PLOTTERS["cosine_hist"](rep, Figure().add_subplot())
    assert sum(p.get_height() for p in hist.patches) == len(rep.cosine_sample)
    assert any(ln.get_xdata()[0] == 0.98 for ln in hist.get_lines())  # the threshold is marked
    bars = PLOTTERS["errors_rejections"](rep, Figure().add_subplot())
    assert 4 in [p.get_width() for p in bars.patches]
    assert len(PLOTTERS["throughput"](rep, Figure().add_subplot()).get_lines()[0].get_xdata()) == N // BATCH


def test_plot_without_ax_uses_pyplot(done: Migration) -> None:
    import matplotlib.pyplot as plt

    ax = plot_throughput(Report.from_store(done.store, "r"))
    try:
        assert ax.figure is plt.gcf() and len(ax.get_lines()[0].get_xdata()) == N // BATCH
    finally:
        plt.close("all")


def test_save_writes_non_trivial_pngs_and_a_summary(done: Migration, tmp_path) -> None:
    paths = report(done, sample=100).save(tmp_path / "rep")
    assert [p.stem for p in paths] == list(PLOTTERS)
    for p in paths:
        pixels = imread(p)
        assert p.stat().st_size > 5000 and float(pixels[..., :3].var()) > 0
    summary = (tmp_path / "rep" / "summary.txt").read_text()
    assert "migration r: completed" in summary and "completeness tag: 1.0000" in summary


def test_text_and_html_forms(done: Migration) -> None:
    rep = Report.from_store(done.store, "r")
    assert str(rep) == repr(rep) and "throughput: median" in str(rep)
    page = rep._repr_html_()
    assert "rejections by reason" in page and "field &#x27;bad&#x27; is not allowed" in page


def test_report_of_a_migration_that_has_not_started(tmp_path) -> None:
    m = Migration.create(make_source(), "memory://dst", migration_id="new", state=tmp_path / "s.db")
    rep = report(m, sample=100)
    assert rep.batches.empty and rep.cosine_sample is None and rep.completeness.empty
    assert len(rep.save(tmp_path / "empty")) == len(PLOTTERS)  # empty plots, no crash


def test_refused_records_are_not_counted_as_terminal_errors(done: Migration) -> None:
    # The write bisection's InvalidData used to be logged as one 'terminal' error per level.
    rep = Report.from_store(done.store, "r")
    assert rep.status.state == "completed" and len(rep.rejections) == 1
    assert (rep.errors["kind"] == "terminal").sum() == 0
