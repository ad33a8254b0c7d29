"""Live figures of a running migration: throughput over time, the sampled cosine similarities
against the threshold, and rejections by reason, drawn from the state store alone (three SQL
reads, no connector), so a panel can redraw them every few seconds while the run goes on.

``live_figure(migration)`` is a bare matplotlib Figure (Agg, never pyplot state): safe to draw
off the kernel's main thread, and shown inline by notebooks as a PNG (headless runs keep it in
the executed notebook). ``figure_png`` renders it for the panel's Image widget.
"""

from __future__ import annotations

import io
from typing import Any

from vmkit.migration.runner import Migration
from vmkit.notebook.report import Report, plot_cosine_hist, plot_rejections, plot_throughput
from vmkit.state.store import StateStore


def live_figure(migration: Migration | None = None, *, store: StateStore | None = None,
                migration_id: str | None = None, width: float = 13.0) -> Any:
    """Throughput, cosine distribution vs threshold, rejections by reason, side by side."""
    from matplotlib.figure import Figure

    store = store or (migration.store if migration is not None else None)
    mid = migration_id or (migration.id if migration is not None else None)
    if store is None or mid is None:
        raise ValueError("live_figure needs a migration, or a store and a migration_id")
    rep = Report.from_store(store, mid)
    fig = Figure(figsize=(width, 3.4))
    for plot, ax in zip((plot_throughput, plot_cosine_hist, plot_rejections), fig.subplots(1, 3)):
        plot(rep, ax)
    fig.tight_layout()
    # A bare Figure shows as a PNG only where pyplot set up the inline backend: say it here,
    # so a headless (papermill) notebook keeps the image as the cell's output.
    fig._repr_png_ = lambda: figure_png(fig, dpi=90)  # type: ignore[attr-defined]
    return fig


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
