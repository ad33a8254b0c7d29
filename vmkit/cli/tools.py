"""The top-level commands: status, validate, rejections, plan, demo and run-notebook.

They hang directly off the root app, so ``register`` adds them there (in help order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vmkit.cli.common import IdOpt, NamespacesOpt, NsCollectionOpt, StateOpt, _run, _store


def status(
    migration_id: Optional[str] = typer.Option(None, "--id", help="Migration id (default: list all)."),
    state: Optional[Path] = StateOpt,
) -> None:
    """State, progress, validation statistics, errors and rejections."""
    from vmkit.migration.status import read_status

    store = _store(state)
    if migration_id is None:
        rows = store.migrations()
        if not rows:
            typer.echo(f"no migrations in {store.path}")
        for r in rows:
            typer.echo(f"{r.id:<24} {r.state:<12} {r.records_read:>10} read  {r.source_uri} -> {r.target_uri}")
        return
    typer.echo(str(_run(lambda: read_status(store, migration_id))))


def validate(
    migration_id: str = IdOpt,
    full: bool = typer.Option(False, "--full", help="Compare every id and content hash now, and map "
                              "every target record back to the raw source (reverse check)."),
    state: Optional[Path] = StateOpt,
) -> None:
    """Show sampled validation, or run full verification with the reverse check (exit 1 on any
    difference, every id printed)."""
    from vmkit.migration.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    if not full:
        typer.echo(str(migration.status()))
        return
    result = _run(lambda: migration.verify(reverse=True))
    for line in result.lines(limit=None):
        typer.echo(line)
    if not result.passed:
        raise typer.Exit(1)


def rejections(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """List every rejected record with its field and reason (tab-separated)."""
    store = _store(state)
    _run(lambda: store.get(migration_id))
    typer.echo("namespace\tid\tfield\treason")
    for ns, rid, fld, reason in store.query(
        "SELECT namespace, record_id, field, reason FROM rejections WHERE migration_id=? ORDER BY rowid",
        migration_id):
        typer.echo(f"{ns}\t{rid}\t{fld}\t{reason}")


def plan_cmd(
    source: str = typer.Option(..., "--source"),
    target: str = typer.Option(..., "--target"),
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    nested_policy: str = typer.Option("json", "--nested", help="json, flatten or drop."),
    sample: int = typer.Option(2000, "--sample", min=0, help="Records profiled and dry-run."),
    full: bool = typer.Option(False, "--full", help="Dry-run every source record."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the plan as JSON (for migrate start --plan)."),
    namespaces: str = NamespacesOpt,
    namespace_collection: str = NsCollectionOpt,
    partitions: int = typer.Option(0, "--partitions", min=0,
                                   help="Split the source into about N parts for the Dask executor."),
) -> None:
    """Print what a migration would do and the records it would reject, writing nothing.
    Exit 1 if the plan has errors."""
    from vmkit.connectors import connect
    from vmkit.planning.dryrun import dry_run
    from vmkit.planning.planner import plan as make_plan

    def build() -> Any:
        with connect(source) as src, connect(target) as dst:
            return make_plan(src, dst, batch_size=batch_size, nested_policy=nested_policy, sample=sample,
                             namespace_policy=namespaces, namespace_collection=namespace_collection,
                             partitions=partitions)

    the_plan = _run(build)
    typer.echo(str(the_plan))
    typer.echo(str(_run(lambda: dry_run(the_plan, sample=None if full else sample))))
    if out is not None:
        out.write_text(the_plan.to_json())
        typer.echo(f"plan written to {out}")
    if the_plan.errors:
        raise typer.Exit(1)


def demo(
    workdir: Path = typer.Option(Path("demo-data"), "--dir", help="Where the demo data and state go."),
    records: int = typer.Option(20_000, "--records", min=1),
    dim: int = typer.Option(768, "--dim", min=1),
) -> None:
    """Generate a Qdrant (embedded) collection, migrate it into another, validate and verify."""
    from vmkit.notebook.demo import run_demo

    status = _run(lambda: run_demo(workdir, records, dim))
    typer.echo(str(status))
    if status.state != "completed":
        raise typer.Exit(1)


def run_notebook_cmd(
    name: str = typer.Argument(..., help="01_explore_and_plan, 02_migrate or 03_validation_report (or 01, 02, 03, or a path)."),
    migration_id: str = typer.Option("demo", "--id", help="Migration id; the executed notebook goes to OUT_DIR/ID/."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="NAME=VALUE notebook parameter (repeatable)."),
    out_dir: Path = typer.Option(Path("papermill-runs"), "--out-dir", help="Where executed notebooks go."),
) -> None:
    """Execute a notebook headless with papermill (interactive=False); exit 1 if a cell fails."""
    from papermill.exceptions import PapermillExecutionError

    from vmkit.notebook.notebooks import parse_parameters, run_notebook

    params = _run(lambda: parse_parameters(param or []))
    try:
        out = _run(lambda: run_notebook(name, migration_id, params, out_dir=out_dir))
    except PapermillExecutionError as exc:
        typer.secho(f"error: cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                    f"(see {out_dir / migration_id})", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add these commands to the root ``app`` under their command names, in help order."""
    app.command("status")(status)
    app.command("validate")(validate)
    app.command("rejections")(rejections)
    app.command("plan")(plan_cmd)
    app.command("demo")(demo)
    app.command("run-notebook")(run_notebook_cmd)
