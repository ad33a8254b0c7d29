"""One self-contained HTML file per migration report: shareable, no kernel, no secrets.

The plan, counts (per namespace when verified), sampled validation and full verification,
rejections and errors as tables, and the figures embedded as base64 PNGs (``data:`` URIs), so
the file opens anywhere on its own. Tables and figures with nothing to show are left out, with
one line saying so. What it holds comes from the state store (URIs there never carry secrets:
connectors refuse them); as a second guard, the value of every environment variable whose name
marks a secret is blanked out of the page before it is written.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # Report calls into this module, handing its plotters: no import back
    from vmkit.notebook.report import Report
    from vmkit.planning.plan import Plan

Plotters = dict[str, Any]  # name -> plot_*(report, ax)

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;
text-align:left;font-size:.9em}th{background:#f6f8fa}pre{background:#f6f8fa;padding:.8em;
overflow-x:auto;white-space:pre-wrap}img{max-width:100%;border:1px solid #d0d7de;margin:.4em 0}
.state-completed{color:#1a7f37}.state-rolled_back{color:#cf222e}.state-in_progress{color:#9a6700}
.none{color:#57606a;font-style:italic}
"""


def _has_data(rep: Report) -> dict[str, bool]:
    sampled = rep.cosine_sample is not None and len(rep.cosine_sample) > 0
    return {"cosine_hist": sampled or bool(rep.validations["mean_cos"].notna().any()),
            "min_cosine": bool(rep.validations["min_cos"].notna().any()),
            "throughput": bool(rep.batches["records_per_s"].notna().any()),
            "errors_rejections": bool(len(rep.errors) or len(rep.rejections)),
            "completeness": bool(len(rep.completeness))}


def figure_uris(rep: Report, plotters: Plotters, dpi: int = 90) -> dict[str, str]:
    """``data:image/png;base64,...`` per plot that has data (bare Agg figures)."""
    from matplotlib.figure import Figure

    out = {}
    for name, present in _has_data(rep).items():
        if not present:
            continue
        fig = Figure(figsize=(7, 4.2))
        plotters[name](rep, fig.add_subplot())
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        out[name] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return out


def _table(df: pd.DataFrame, empty: str) -> str:
    if not len(df):
        return f"<p class='none'>{html.escape(empty)}</p>"
    return str(df.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4f}", border=0))


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _plan_section(plan: Plan | None) -> str:
    if plan is None:
        return "<p class='none'>no plan stored (planning was interrupted or failed)</p>"
    return plan._repr_html_() if hasattr(plan, "_repr_html_") else f"<pre>{html.escape(str(plan))}</pre>"


def render(rep: Report, plotters: Plotters, plan: Plan | None = None) -> str:
    """The report as one HTML document (a string)."""
    st = rep.status
    v = st.validation
    d = st.verification_detail or {}
    counts = _kv([("state", st.headline), ("batches", st.batches), ("records read", st.records_read),
                  ("records written", st.records_written), ("records rejected", st.records_rejected),
                  ("expected (source count at planning)", st.expected_records),
                  ("read = written + rejected", "yes" if st.balanced else "NO")])
    validation = _kv([("validated batches", v.get("batches") or 0), ("records compared", v.get("records") or 0),
                      ("cosine mean / min / max", " / ".join("-" if v.get(k) is None else f"{v[k]:.4f}"
                                                           for k in ("mean_cos", "min_cos", "max_cos"))),
                      ("threshold", rep.threshold), ("failures", v.get("failures") or 0),
                      ("missing on the target", v.get("missing") or 0)])
    verification = (_kv([("outcome", st.verification), ("matched", d.get("matched", "-")),
                         ("missing", d.get("missing_count", "-")), ("extra", d.get("extra_count", "-")),
                         ("mismatched", d.get("mismatched_count", "-"))])
                    if st.verification else "<p class='none'>not run yet</p>")
    figures = figure_uris(rep, plotters)
    figs = "".join(f"<figure><img alt='{html.escape(n)}' src='{uri}'></figure>" for n, uri in figures.items())
    skipped = [n for n in plotters if n not in figures]
    if skipped:
        figs += f"<p class='none'>no data for: {html.escape(', '.join(skipped))}</p>"
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    parts = [
        f"<h1>vmkit migration <code>{html.escape(rep.migration_id)}</code>: "
        f"<span class='state-{html.escape(st.state)}'>{html.escape(st.headline)}</span></h1>",
        f"<p>{html.escape(st.source_uri)} &rarr; {html.escape(st.target_uri)}<br>"
        f"<small>generated {generated} from the state store</small></p>",
        "<h2>Counts</h2>", counts,
        "<h2>Records read vs the source's own count, per namespace</h2>",
        _table(rep.namespace_counts, "no per-namespace counts (full verification not run yet)"),
        "<h2>Sampled validation</h2>", validation,
        "<h2>Full verification</h2>", verification,
        "<h2>Figures</h2>", figs,
        "<h2>Rejections by reason</h2>", _table(rep.rejections, "no record rejected"),
        "<h2>Errors (latest 20)</h2>", _table(rep.errors.tail(20), "no errors"),
        "<h2>Metadata completeness</h2>", _table(rep.completeness, "no sampled validation"),
        "<h2>Plan</h2>", _plan_section(plan),
    ]
    if rep.notes:
        parts += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in rep.notes) + "</ul>"]
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<title>vmkit report {html.escape(rep.migration_id)}</title><style>{_CSS}</style></head>"
           f"<body>{''.join(parts)}</body></html>")
    return scrub_secrets(doc)


def scrub_secrets(text: str, environ: dict[str, str] | None = None) -> str:
    """Blank out the value of every environment variable named like a secret."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if _SECRET_NAME.search(name) and len(value) >= 6 and value in text:
            text = text.replace(value, f"[{name} hidden]")
    return text


def write_html(rep: Report, plotters: Plotters, path: str | os.PathLike[str],
               plan: Plan | None = None) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rep, plotters, plan), encoding="utf-8")
    return out
