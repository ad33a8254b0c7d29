"""``vmkit report``: the report of one migration, as text or as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmkit.cli.common import IdOpt, StateOpt, _run, _store


def report_cmd(
    migration_id: str = IdOpt,
    html: Optional[Path] = typer.Option(None, "--html", help="Write one self-contained HTML file "
                                        "(figures embedded, no secrets) here."),
    sample: int = typer.Option(0, "--sample", min=0, help="Records re-read from both sides for "
                               "per-record cosine and per-field completeness (0: state store only)."),
    state: Optional[Path] = StateOpt,
) -> None:
    """The report from the state store: counts, validation, verification, rejections, errors."""
    from vmkit.migration.runner import Migration
    from vmkit.notebook.report import report

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    rep = _run(lambda: report(migration, sample=sample))
    if html is None:
        typer.echo(str(rep))
        return
    typer.echo(str(_run(lambda: rep.save_html(html))))


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
