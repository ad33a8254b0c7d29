"""Report data for one migration (the plot_* functions: vmkit.notebook.plots, also importable from here).

Everything comes from the state store (ledger, validations, rejections, errors), plus an
optional re-read sample: given connectors, ``sample`` records are taken from ledger batches
spread over the run (each re-scanned from its stored ``cursor_before``), mapped with the
stored plan and compared with what the target holds now. The sample gives a per-record cosine
and metadata completeness per field. Without it, completeness is the per-batch figure from
sampled validation (one "all fields" row): the state does not hold it per field.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vmkit.connectors import connect, open_target
from vmkit.connectors.base import Connector
from vmkit.core import kernels
from vmkit.core.fingerprint import canonical_metadata, stored_vectors
from vmkit.core.retry import call_with_retry
from vmkit.migration.runner import Migration
from vmkit.migration.status import Status, read_status
from vmkit.notebook.plots import (  # noqa: F401 - the plot_* functions, also from here
    PLOTTERS,
    plot_completeness,
    plot_cosine_hist,
    plot_errors_rejections,
    plot_min_cosine,
    plot_rejections,
    plot_throughput,
)
from vmkit.planning.plan import Plan
from vmkit.planning.transform import map_batch
from vmkit.state.store import StateStore

log = logging.getLogger("vmkit.notebook.report")

_RECORD_ID = r"record (?:'[^']*'|\"[^\"]*\"|\d+)"
BATCH_COLUMNS = ("seq", "read", "written", "rejected", "duration_s", "committed_at")
VALIDATION_COLUMNS = ("seq", "n", "missing", "mean_cos", "min_cos", "max_cos", "failures",
                      "completeness", "at")
COMPLETENESS_COLUMNS = ("field", "records", "present", "equal", "completeness")


@dataclass(repr=False)
class Report:
    migration_id: str
    status: Status
    threshold: float
    batches: pd.DataFrame  # BATCH_COLUMNS + elapsed_s, records_per_s
    validations: pd.DataFrame  # VALIDATION_COLUMNS
    rejections: pd.DataFrame  # reason, field, count
    errors: pd.DataFrame  # at, seq, kind, message
    completeness: pd.DataFrame  # field, records, present, equal, completeness
    cosine_sample: np.ndarray | None = None  # per-record cosine of the re-read sample
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = None  # the stored plan (None before planning)

    @classmethod
    def from_store(cls, store: StateStore, migration_id: str, *, sample: int = 0,
                   connectors: tuple[Connector, Connector] | None = None) -> Report:
        """Report from the state store; with ``connectors`` (source, target) and ``sample`` > 0,
        also re-read a sample of records (see the module docstring)."""
        rec = store.get(migration_id)

        def table(name: str, cols: tuple[str, ...], order: str) -> pd.DataFrame:
            rows = store.query(f"SELECT {', '.join(cols)} FROM {name} WHERE migration_id=?"
                               f" ORDER BY {order}", migration_id)
            return pd.DataFrame(rows, columns=list(cols))

        batches = table("batches", BATCH_COLUMNS, "seq")
        batches["elapsed_s"] = batches["committed_at"] - (batches["committed_at"].min() or 0.0)
        seconds = batches["duration_s"].where(batches["duration_s"] > 0)
        batches["records_per_s"] = batches["read"] / seconds
        validations = table("validations", VALIDATION_COLUMNS, "seq")
        rejections = _by_reason(table("rejections", ("reason", "field"), "rowid"))
        errors = table("errors", ("at", "seq", "kind", "message"), "at")
        report = cls(migration_id, read_status(store, migration_id),
                     float(rec.options.get("min_similarity", 0.98)), batches, validations,
                     rejections, errors, _state_completeness(validations),
                     plan=Plan.from_json(rec.plan_json) if rec.plan_json else None)
        if sample > 0 and connectors is not None and len(batches) and rec.plan_json:
            _add_sample(report, store, Plan.from_json(rec.plan_json), connectors, sample)
        return report

    # -- views -------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        out = self.status.lines()
        b = self.batches
        if len(b):
            out.append(f"  throughput: median {b['records_per_s'].median():,.0f} records/s"
                       f" per batch over {len(b)} batches")
        if self.cosine_sample is not None and len(self.cosine_sample):
            c = self.cosine_sample
            below = int((~(c >= self.threshold)).sum())
            out.append(f"  re-read sample: {len(c)} records, cosine min {np.nanmin(c):.4f}, "
                       f"{below} below {self.threshold}")
        out += [f"  completeness {r.field}: {r.completeness:.4f} ({r.records} records)"
                for r in self.completeness.itertuples()]
        return out + [f"  note: {n}" for n in self.notes]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__  # the text/plain form in notebooks, too

    @property
    def namespace_counts(self) -> pd.DataFrame:
        """Records read vs the source's own count per namespace, from the stored verification."""
        counts = (self.status.verification_detail or {}).get("namespace_counts") or {}
        rows = [(ns, c["read"], c["source"], c.get("source_before", c["source"]),
                 c["read"] == c["source"] == c.get("source_before", c["source"]))
                for ns, c in counts.items()]
        return pd.DataFrame(rows, columns=["namespace", "read", "source", "source_before", "reconciled"])

    def _repr_html_(self) -> str:
        tables = [("records read vs source count per namespace", self.namespace_counts),
                  ("rejections by reason", self.rejections), ("latest errors", self.errors.tail(5)),
                  ("metadata completeness per field", self.completeness)]
        parts = [self.status._repr_html_()]
        parts += [f"<h4>{html.escape(title)}</h4>{df.to_html(index=False)}"
                  for title, df in tables if len(df)]
        return "<div>" + "".join(parts) + "</div>"

    def to_html(self) -> str:
        """One self-contained HTML document (vmkit.notebook.html_report)."""
        from vmkit.notebook.html_report import render

        return render(self, PLOTTERS, self.plan)

    def save_html(self, path: str | Path) -> Path:
        """Write ``to_html()`` to ``path``: one file to share, figures embedded, no secrets."""
        from vmkit.notebook.html_report import write_html

        out = write_html(self, PLOTTERS, path, self.plan)
        log.info("HTML report for %s written to %s", self.migration_id, out)
        return out

    def show(self) -> Any:
        """All plots in one pyplot figure (shown inline in a notebook)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
        for plot, ax in zip(PLOTTERS.values(), axes.flat):
            plot(self, ax)
        axes.flat[-1].set_axis_off()
        fig.suptitle(f"migration {self.migration_id}: {self.status.state}")
        fig.tight_layout()
        plt.show()
        return fig

    def save(self, directory: str | Path, dpi: int = 100) -> list[Path]:
        """One PNG per plot, and summary.txt. Uses bare Figures (Agg), never pyplot state."""
        from matplotlib.figure import Figure

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, plot in PLOTTERS.items():
            fig = Figure(figsize=(7, 4.5))
            plot(self, fig.add_subplot())
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=dpi)
            paths.append(out / f"{name}.png")
        (out / "summary.txt").write_text(str(self) + "\n")
        log.info("report for %s saved in %s", self.migration_id, out)
        return paths


def report(migration: Migration, sample: int = 500) -> Report:
    """The report of a migration; ``sample`` records are re-read from both sides (0: none)."""
    if sample <= 0:
        return Report.from_store(migration.store, migration.id)
    rec = migration.store.get(migration.id)
    with connect(rec.source_uri) as source, open_target(rec.target_uri, migration.plan.target_routes) as target:
        return Report.from_store(migration.store, migration.id, sample=sample,
                                 connectors=(source, target))


def _by_reason(raw: pd.DataFrame) -> pd.DataFrame:
    """Rejections counted by (reason, field), with record ids taken out of the reasons."""
    raw["reason"] = raw["reason"].str.replace(_RECORD_ID, "record …", regex=True)
    out = raw.groupby(["reason", "field"]).size().reset_index(name="count")
    return out.sort_values("count", ascending=False, ignore_index=True)


def _state_completeness(validations: pd.DataFrame) -> pd.DataFrame:
    v = validations.dropna(subset=["completeness"])
    n = int(v["n"].sum())
    rows = [["(all fields, sampled validation)", n, None, None,
             float((v["completeness"] * v["n"]).sum() / n)]] if n else []
    return pd.DataFrame(rows, columns=list(COMPLETENESS_COLUMNS))


def _add_sample(report: Report, store: StateStore, plan: Plan,
                connectors: tuple[Connector, Connector], sample: int) -> None:
    source, target = connectors
    ledger = store.query("SELECT seq, cursor_before, read FROM batches WHERE migration_id=?"
                         " ORDER BY seq", report.migration_id)
    k = min(len(ledger), 10)  # batches spread over the run; each one costs a source scan
    picks = sorted({int(i) for i in np.linspace(0, len(ledger) - 1, k).round()})
    quota = [sample // len(picks) + (n < sample % len(picks)) for n in range(len(picks))]
    normalize = plan.capabilities.normalizes_cosine and plan.target.metric == "cosine"
    as_float = not plan.capabilities.metadata_big_ints  # same rules as vmkit.migration.validate.compare_opts
    refused = store.refused_keys(report.migration_id)
    cosines: list[np.ndarray] = []
    counts: dict[str, list[int]] = {}  # field -> [records, present, equal]
    for i, per in zip(picks, quota):
        batch, _ = call_with_retry(source.scan, ledger[i][1], ledger[i][2])
        mapped = map_batch(batch, plan)
        # Records the target refused (dead-lettered) are absent by design: leave them out.
        keep = [j for j, sid in enumerate(mapped.source_ids)
                if (mapped.source_namespace, sid) not in refused][:per]
        want = mapped.batch.take(keep)
        if not len(want):
            continue
        got = call_with_retry(target.fetch, want.ids, want.namespace)
        where = {rid: j for j, rid in enumerate(got.ids)}
        rows = [j for j, rid in enumerate(want.ids) if rid in where]
        if rows:
            cosines.append(kernels.cosine_rows(stored_vectors(want.vectors[rows], normalize),
                                               got.vectors[[where[want.ids[j]] for j in rows]]))
        for j, rid in enumerate(want.ids):
            have = got.metadata[where[rid]] if rid in where else None
            for key, value in want.metadata[j].items():
                c = counts.setdefault(key, [0, 0, 0])
                c[0] += 1
                if have is not None and key in have:
                    c[1] += 1
                    c[2] += (canonical_metadata({key: value}, as_float)
                             == canonical_metadata({key: have[key]}, as_float))
    report.cosine_sample = np.concatenate(cosines) if cosines else np.zeros(0, np.float32)
    per_field = [[f, n, p, e, e / n] for f, (n, p, e) in sorted(counts.items())]
    if per_field:
        report.completeness = pd.DataFrame(per_field, columns=list(COMPLETENESS_COLUMNS))
    report.notes.append(f"re-read {len(report.cosine_sample)} records from {len(picks)} ledger"
                        " batches; a source changed since the run shows up as differences")
