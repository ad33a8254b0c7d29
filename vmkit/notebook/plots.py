"""``plot_*(report, ax=None)``: the report's figures (matplotlib, imported lazily). Each draws
on ``ax`` (a new pyplot Axes when None) and returns it; a chart with nothing to show says so
instead of drawing empty axes. ``PLOTTERS`` names them for ``Report.save``, ``show`` and the
HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the report module imports this one
    from vmkit.notebook.report import Report

def _ax(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _no_data(ax: Any, title: str, text: str) -> Any:
    """An empty chart says why instead of drawing empty axes."""
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _threshold_style(report: Report) -> dict[str, Any]:
    return {"color": "crimson", "linestyle": "--", "label": f"threshold {report.threshold}"}


def plot_cosine_hist(report: Report, ax: Any = None) -> Any:
    """Histogram of cosine similarity (per record if sampled, else per-batch mean and min)."""
    ax = _ax(ax)
    v = report.validations
    if report.cosine_sample is not None and len(report.cosine_sample):
        data = {f"per record (re-read sample of {len(report.cosine_sample)})": report.cosine_sample}
    else:
        data = {"per-batch mean": v["mean_cos"].dropna().to_numpy(),
                "per-batch min": v["min_cos"].dropna().to_numpy()}
    values = np.concatenate([np.asarray(d, float) for d in data.values()] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    if not len(values):
        return _no_data(ax, "cosine similarity, source vs target", "no sampled validation yet")
    lo = min(report.threshold - 0.005, values.min() if len(values) else report.threshold)
    hi = max(1.0, values.max() if len(values) else 1.0) + 0.001
    for label, d in data.items():
        if len(d):
            ax.hist(np.asarray(d, float), bins=40, range=(lo, hi), alpha=0.7, label=label)
    ax.axvline(report.threshold, **_threshold_style(report))
    ax.set(title="cosine similarity, source vs target", xlabel="cosine", ylabel="count")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_min_cosine(report: Report, ax: Any = None) -> Any:
    """Minimum cosine of each validated batch, in commit order."""
    ax = _ax(ax)
    v = report.validations.dropna(subset=["min_cos"])
    if not len(v):
        return _no_data(ax, "min cosine per validated batch", "no sampled validation yet")
    ax.plot(v["seq"], v["min_cos"], marker="o", linestyle="-", label="min cosine")
    ax.axhline(report.threshold, **_threshold_style(report))
    ax.set(title="min cosine per validated batch", xlabel="batch (ledger seq)", ylabel="min cosine")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_throughput(report: Report, ax: Any = None) -> Any:
    """Records/s of each batch (ledger read / duration) against its commit time."""
    ax = _ax(ax)
    b = report.batches.dropna(subset=["records_per_s"])
    if not len(b):
        return _no_data(ax, "throughput per batch", "no batch committed yet")
    ax.plot(b["elapsed_s"], b["records_per_s"], marker=".", linestyle="-")
    ax.set(title="throughput per batch", xlabel="seconds since the first commit",
           ylabel="records/s")
    ax.set_ylim(bottom=0)
    return ax


def plot_errors_rejections(report: Report, ax: Any = None) -> Any:
    """Errors by kind and rejected records by reason (a note when there were none)."""
    ax = _ax(ax)
    counts: dict[str, int] = {}
    for kind, n in report.errors.groupby("kind").size().items():
        counts[f"error: {kind}"] = int(n)
    for row in report.rejections.itertuples():
        label = f"rejected [{row.field}]: {row.reason}"
        counts[label[:60]] = counts.get(label[:60], 0) + int(row.count)
    if not counts:
        return _no_data(ax, "errors and rejections", "no errors, no rejections")
    ax.barh(list(counts), list(counts.values()), color="indianred")
    ax.invert_yaxis()
    ax.set(title="errors and rejections", xlabel="count")
    return ax


def plot_rejections(report: Report, ax: Any = None) -> Any:
    """Rejected records by reason (and field)."""
    ax = _ax(ax)
    r = report.rejections
    if not len(r):
        return _no_data(ax, "rejections by reason", "no record rejected")
    labels = [f"[{row.field}] {row.reason}"[:50] for row in r.head(8).itertuples()]
    ax.barh(labels, r["count"].head(8).astype(int), color="indianred")
    ax.invert_yaxis()
    ax.set(title="rejections by reason", xlabel="records")
    return ax


def plot_completeness(report: Report, ax: Any = None) -> Any:
    """Share of records whose target value equals the mapped source value, per field."""
    ax = _ax(ax)
    c = report.completeness
    if not len(c):
        return _no_data(ax, "metadata completeness per field", "no sampled validation yet")
    ax.barh(c["field"].astype(str), c["completeness"].astype(float), color="seagreen")
    ax.invert_yaxis()
    ax.set(title="metadata completeness per field", xlabel="share equal in target", xlim=(0, 1.05))
    return ax


PLOTTERS = {"cosine_hist": plot_cosine_hist, "min_cosine": plot_min_cosine,
            "throughput": plot_throughput, "errors_rejections": plot_errors_rejections,
            "completeness": plot_completeness}
