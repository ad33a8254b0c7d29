"""Run the notebooks headless with papermill, and the helpers the notebooks share.

Executed copies land in ``papermill-runs/<migration_id>/``. The shell equivalent::

    papermill notebooks/02_migrate.ipynb papermill-runs/demo/02_migrate.ipynb \\
        -p migration_id demo -p interactive False
    papermill notebooks/03_validation_report.ipynb papermill-runs/demo/03_validation_report.ipynb \\
        -p migration_id demo

(papermill does not create the output directory: ``mkdir -p papermill-runs/demo`` first).
Relative paths in the notebooks' parameters are relative to the working directory, which is
the project root for ``make demo`` and the CLI; in Jupyter the notebooks move there first.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmkit.core.errors import ConfigError, MissingDependency

log = logging.getLogger("vmkit.notebook.notebooks")

NOTEBOOKS = ("01_explore_and_plan", "02_migrate", "03_validation_report")


def notebooks_dir() -> Path:
    """``$VMKIT_NOTEBOOKS``, else the ``notebooks/`` folder of the source checkout."""
    env = os.environ.get("VMKIT_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"


def notebook_path(name: str) -> Path:
    """A notebook by name ("02_migrate", "02", "02_migrate.ipynb") or by path."""
    as_path = Path(name)
    if as_path.suffix == ".ipynb" and as_path.exists():
        return as_path
    stem = as_path.name.removesuffix(".ipynb")
    matches = [n for n in NOTEBOOKS if n == stem or n.startswith(f"{stem}_")]
    if len(matches) != 1:
        raise ConfigError(f"unknown notebook {name!r} (known: {', '.join(NOTEBOOKS)})")
    path = notebooks_dir() / f"{matches[0]}.ipynb"
    if not path.exists():
        raise ConfigError(f"{path} not found (set VMKIT_NOTEBOOKS to the notebooks folder)")
    return path


def run_notebook(name: str, migration_id: str, parameters: Mapping[str, Any] | None = None,
                 out_dir: str | os.PathLike[str] = "papermill-runs", *,
                 cwd: str | os.PathLike[str] | None = None, kernel_name: str | None = None,
                 timeout: float | None = None, log_output: bool = False) -> Path:
    """Execute a notebook headless into ``out_dir/<migration_id>/`` and return its path.

    ``migration_id`` is passed to the notebook, and ``interactive=False`` unless given, for
    the notebooks that declare them. A failing cell raises papermill's
    PapermillExecutionError; the executed notebook is written either way.
    """
    try:
        import papermill as pm
    except ImportError:
        raise MissingDependency("papermill", "notebook") from None
    src = notebook_path(name)
    declared = pm.inspect_notebook(str(src))
    params = dict(parameters or {})
    if "migration_id" in declared:
        params["migration_id"] = migration_id
    if "interactive" in declared:
        params.setdefault("interactive", False)
    dest = Path(out_dir) / migration_id
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / src.name
    log.info("running %s -> %s", src, out)
    pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=kernel_name,
                        cwd=None if cwd is None else str(cwd), execution_timeout=timeout,
                        log_output=log_output, progress_bar=False)
    return out


def parse_parameters(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (the CLI's ``-p``): Python literals (2000, 0.5, False, None,
    [..]) become values, anything else stays a string, like papermill's ``-p NAME VALUE``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"parameter {item!r} is not NAME=VALUE")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


# -- helpers the notebooks call ---------------------------------------------------------------
def project_root(start: Path | None = None) -> Path:
    """The folder relative parameters refer to: the project root when a kernel runs inside
    ``notebooks/`` (Jupyter's default), else the working directory."""
    here = (start or Path.cwd()).resolve()
    if here.name == "notebooks" and (here.parent / "pyproject.toml").exists():
        return here.parent
    return here


def qdrant_dir_uri(directory: str | os.PathLike[str], collection: str = "docs") -> str:
    """A Qdrant embedded-engine URI for a directory (URIs need absolute paths)."""
    return f"qdrant://{Path(directory).resolve()}?collection={collection}"


def demo_source(data_dir: str | os.PathLike[str], records: int, dim: int, seed: int = 7) -> str:
    """The embedded demo source (``records`` x ``dim`` synthetic records), generated once.
    A marker written after the last record makes an interrupted generation start over."""
    from vmkit.connectors.datasets import fill

    where = Path(data_dir) / f"source-qdrant-{records}x{dim}"
    marker = where.with_suffix(".ok")
    uri = qdrant_dir_uri(where)
    if not marker.exists():
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        log.info("generating %d x %d demo records in %s", records, dim, where)
        fill(uri, records, dim, seed=seed)
        marker.touch()
    return uri


def demo_target(run_dir: str | os.PathLike[str]) -> str:
    """The embedded demo target: a Qdrant directory inside the run's folder."""
    return qdrant_dir_uri(Path(run_dir) / "target-qdrant")


def credentials_present(names: list[str]) -> dict[str, str]:
    """For each environment variable NAME: "set" or "unset". Never the value."""
    return {n: "set" if os.environ.get(n) else "unset" for n in names}
