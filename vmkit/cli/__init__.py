"""cli: the operator's command, a thin view over the library (``vmkit --help``), one module
per command group. The top floor: may import every package below it.

Every expected failure (bad URI, unknown id, illegal transition, held lease) prints one line
and exits non-zero; tracebacks are for bugs only.

This module builds the root ``app`` (the console script ``vmkit = vmkit.cli:app`` and
``python -m vmkit``) with its logging options; the commands live in ``migrate``, ``tools``
(the top-level ones) and ``sync``, what they share in ``common``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmkit.cli import report, tools
from vmkit.cli.common import _setup_logging
from vmkit.cli.migrate import migrate_app
from vmkit.cli.sync import sync_app

__all__ = ["app"]

app = typer.Typer(help="Move vectors between vector databases, resumably and provably.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(migrate_app, name="migrate")
tools.register(app)
report.register(app)
app.add_typer(sync_app, name="sync")


@app.callback()
def _main(
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_file: Optional[Path] = typer.Option(None, "--log-file", help="Also log (at DEBUG) to this file."),
) -> None:
    _setup_logging(log_level, log_file)
