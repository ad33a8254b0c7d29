"""The operator's CLI: a thin view over the library (``vmkit --help``).

Every expected failure (bad URI, unknown id, illegal transition, held lease) prints one line
and exits non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from vmkit.errors import VmkitError

app = typer.Typer(help="Move vectors between vector databases, resumably and provably.",
                  no_args_is_help=True, add_completion=False)
migrate_app = typer.Typer(help="Start, resume, stop or roll back a migration.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")

StateOpt = typer.Option(None, "--state", envvar="VMKIT_STATE",
                        help="State file (default ./.vmkit/state.db).")
IdOpt = typer.Option(..., "--id", help="Migration id.")
NamespacesOpt = typer.Option(
    "auto", "--namespaces",
    help="Where source namespaces go: auto (kept where the target has namespaces, else field), "
         "field (payload field 'namespace'), collections (one collection each), keep or drop.")
NsCollectionOpt = typer.Option(
    "{collection}_{namespace}", "--namespace-collection",
    help="With --namespaces collections: the collection name per namespace (the default "
         "namespace keeps the target's collection).")


@app.callback()
def _main(
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_file: Optional[Path] = typer.Option(None, "--log-file", help="Also log (at DEBUG) to this file."),
) -> None:
    _setup_logging(log_level, log_file)


def _setup_logging(level: str, log_file: Path | None) -> None:
    root = logging.getLogger("vmkit")
    root.setLevel(logging.DEBUG)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(level.upper())
    err.setFormatter(fmt)
    root.handlers = [err]
    if log_file is not None:
        fh = logging.FileHandler(log_file)
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(fmt)
        root.addHandler(fh)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except VmkitError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def _store(state: Optional[Path]) -> Any:
    from vmkit.state import StateStore

    return _run(lambda: StateStore(state))


def _progress_bar(total: int) -> tuple[Callable[[Any], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit="rec", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
    def update(p: Any) -> None:
        bar.n = p.records_read
        bar.set_postfix(batches=p.batches, rejected=p.records_rejected, refresh=False)
        bar.refresh()
    return update, bar.close


def _drive(migration: Any, max_batches: Optional[int], progress: bool) -> None:
    """Run a migration with text progress; exit 1 unless it completed or stopped cleanly."""
    status = _run(migration.status)
    update, close = _progress_bar(status.expected_records) if progress else (None, lambda: None)
    try:
        status = _run(lambda: migration.run(max_batches=max_batches, on_batch=update))
    finally:
        close()
    typer.echo(str(status))
    if status.state == "in_progress" and status.scan_done and status.verification == "failed":
        raise typer.Exit(1)
    if status.state == "in_progress":
        typer.echo(f"stopped; resume with: vmkit migrate resume --id {status.id}")


def _continuing(store: Any, migration_id: Optional[str], source: str, target: str) -> Optional[str]:
    """The id when ``start`` names an existing migration of the same URIs (it continues);
    exit 2 when the id is taken by another one."""
    if not migration_id or not store.exists(migration_id):
        return None
    rec = store.get(migration_id)
    if (rec.source_uri, rec.target_uri) != (source, target):
        typer.secho(f"error: migration '{migration_id}' exists with other URIs; choose another --id",
                    err=True, fg="red")
        raise typer.Exit(2)
    return migration_id


def _refuse_nonempty_target(store: Any, migration_id: Optional[str], target: str) -> None:
    """A new migration into a target that already holds records is most often a lost or
    rewound state file: starting afresh would re-copy everything and forget that vmkit
    created the target (so rollback would no longer drop it). Exit 2 with one line."""
    from vmkit.connectors import connect

    def count() -> int:
        with connect(target) as dst:
            info = dst.describe()
        return info.count if info is not None else 0

    held = _run(count)
    if held:
        who = f"migration '{migration_id}'" if migration_id else "this new migration"
        typer.secho(f"error: the target already holds {held} records and {who} is not in the state "
                    f"store {store.path} (lost or restored from an old copy?); pass --state with "
                    f"the store that ran it, or --into-nonempty-target to copy into it anyway",
                    err=True, fg="red")
        raise typer.Exit(2)


@migrate_app.command("start")
def migrate_start(
    source: str = typer.Option(..., "--source", help="Source URI, e.g. qdrant:///data/a?collection=docs"),
    target: str = typer.Option(..., "--target", help="Target URI."),
    migration_id: Optional[str] = typer.Option(None, "--id", help="Migration id (default: generated)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    sample_rate: float = typer.Option(0.1, "--sample-rate", min=0.0, max=1.0),
    min_similarity: float = typer.Option(0.98, "--min-similarity"),
    verify: bool = typer.Option(True, "--verify/--skip-verify", help="Full verification before completed."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches", help="Stop after N batches."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="A plan from `vmkit plan --out`."),
    into_nonempty: bool = typer.Option(False, "--into-nonempty-target",
                                       help="Start a new migration even if the target holds records."),
    namespaces: str = NamespacesOpt,
    namespace_collection: str = NsCollectionOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Plan and run a migration. Starting an existing id continues it (a finished one is left as
    is); a new one into a target that already holds records is refused unless asked for."""
    from vmkit.runner import Migration

    store = _store(state)
    existing = _continuing(store, migration_id, source, target)
    if existing:
        migration = Migration.open(existing, store)
    else:
        if not into_nonempty:
            _refuse_nonempty_target(store, migration_id, target)
        migration = _run(lambda: Migration.create(
            source, target, migration_id=migration_id, state=store, plan=_load_plan(plan_file),
            batch_size=batch_size, sample_rate=sample_rate, min_similarity=min_similarity, verify=verify,
            namespace_policy=namespaces, namespace_collection=namespace_collection))
        typer.echo(str(migration.plan))
    _drive(migration, max_batches, progress)


@migrate_app.command("resume")
def migrate_resume(
    migration_id: str = IdOpt,
    max_batches: Optional[int] = typer.Option(None, "--max-batches"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Resume with this plan instead."),
    accept_plan_change: bool = typer.Option(False, "--accept-plan-change",
                                            help="Allow a --plan that changes what happens to the data."),
    state: Optional[Path] = StateOpt,
) -> None:
    """Continue from the last checkpoint."""
    from vmkit.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    new_plan = _load_plan(plan_file)
    if new_plan is not None:
        _run(lambda: migration.replan(new_plan, accept_change=accept_plan_change))
    _drive(migration, max_batches, progress)


@migrate_app.command("stop")
def migrate_stop(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """Ask the running process to stop after its batch in flight (through the state store)."""
    store = _store(state)
    rec = _run(lambda: store.get(migration_id))
    if rec.state != "in_progress":
        typer.echo(f"migration {migration_id} is {rec.state}; nothing to stop")
        return
    store.set_flag(migration_id, "stop_requested", True)
    typer.echo(f"stop requested for {migration_id}; the runner stops after its current batch")


@migrate_app.command("rollback")
def migrate_rollback(
    migration_id: str = IdOpt,
    drop_target: bool = typer.Option(False, "--drop-target", help="Drop the target collection if vmkit created it."),
    state: Optional[Path] = StateOpt,
) -> None:
    """Before cutover: stop and mark rolled_back; traffic stays on the source."""
    from vmkit.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    typer.echo(str(_run(lambda: migration.rollback(drop_target=drop_target))))


@app.command("status")
def status(
    migration_id: Optional[str] = typer.Option(None, "--id", help="Migration id (default: list all)."),
    state: Optional[Path] = StateOpt,
) -> None:
    """State, progress, validation statistics, errors and rejections."""
    from vmkit.status import read_status

    store = _store(state)
    if migration_id is None:
        rows = store.migrations()
        if not rows:
            typer.echo(f"no migrations in {store.path}")
        for r in rows:
            typer.echo(f"{r.id:<24} {r.state:<12} {r.records_read:>10} read  {r.source_uri} -> {r.target_uri}")
        return
    typer.echo(str(_run(lambda: read_status(store, migration_id))))


@app.command("validate")
def validate(
    migration_id: str = IdOpt,
    full: bool = typer.Option(False, "--full", help="Compare every id and content hash now."),
    state: Optional[Path] = StateOpt,
) -> None:
    """Show sampled validation, or run full verification (exit 1 on any difference, every id printed)."""
    from vmkit.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    if not full:
        typer.echo(str(migration.status()))
        return
    result = _run(migration.verify)
    for line in result.lines(limit=None):
        typer.echo(line)
    if not result.passed:
        raise typer.Exit(1)


@app.command("rejections")
def rejections(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """List every rejected record with its field and reason (tab-separated)."""
    store = _store(state)
    _run(lambda: store.get(migration_id))
    typer.echo("namespace\tid\tfield\treason")
    for ns, rid, fld, reason in store.query(
        "SELECT namespace, record_id, field, reason FROM rejections WHERE migration_id=? ORDER BY rowid",
        migration_id):
        typer.echo(f"{ns}\t{rid}\t{fld}\t{reason}")


@app.command("plan")
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
) -> None:
    """Print what a migration would do and the records it would reject, writing nothing.
    Exit 1 if the plan has errors."""
    from vmkit.connectors import connect
    from vmkit.dryrun import dry_run
    from vmkit.plan import plan as make_plan

    def build() -> Any:
        with connect(source) as src, connect(target) as dst:
            return make_plan(src, dst, batch_size=batch_size, nested_policy=nested_policy, sample=sample,
                             namespace_policy=namespaces, namespace_collection=namespace_collection)

    the_plan = _run(build)
    typer.echo(str(the_plan))
    typer.echo(str(_run(lambda: dry_run(the_plan, sample=None if full else sample))))
    if out is not None:
        out.write_text(the_plan.to_json())
        typer.echo(f"plan written to {out}")
    if the_plan.errors:
        raise typer.Exit(1)


def _load_plan(path: Optional[Path]) -> Any:
    if path is None:
        return None
    from vmkit.plan import Plan

    return _run(lambda: Plan.from_json(path.read_text()))


@app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("demo-data"), "--dir", help="Where the demo data and state go."),
    records: int = typer.Option(20_000, "--records", min=1),
    dim: int = typer.Option(768, "--dim", min=1),
) -> None:
    """Generate a Qdrant (embedded) collection, migrate it into another, validate and verify."""
    from vmkit.demo import run_demo

    status = _run(lambda: run_demo(workdir, records, dim))
    typer.echo(str(status))
    if status.state != "completed":
        raise typer.Exit(1)


@app.command("run-notebook")
def run_notebook_cmd(
    name: str = typer.Argument(..., help="01_explore_and_plan, 02_migrate or 03_validation_report (or 01, 02, 03, or a path)."),
    migration_id: str = typer.Option("demo", "--id", help="Migration id; the executed notebook goes to OUT_DIR/ID/."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="NAME=VALUE notebook parameter (repeatable)."),
    out_dir: Path = typer.Option(Path("papermill-runs"), "--out-dir", help="Where executed notebooks go."),
) -> None:
    """Execute a notebook headless with papermill (interactive=False); exit 1 if a cell fails."""
    from papermill.exceptions import PapermillExecutionError

    from vmkit.notebooks import parse_parameters, run_notebook

    params = _run(lambda: parse_parameters(param or []))
    try:
        out = _run(lambda: run_notebook(name, migration_id, params, out_dir=out_dir))
    except PapermillExecutionError as exc:
        typer.secho(f"error: cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                    f"(see {out_dir / migration_id})", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(str(out))


sync_app = typer.Typer(help="Zero-downtime sync: journaled writes, catch-up, verification passes, "
                            "cutover and rollback after cutover.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


def _open_sync(migration_id: str, state: Optional[Path]) -> Any:
    from vmkit.sync import Sync

    store = _store(state)
    return _run(lambda: Sync.open(migration_id, store))


@sync_app.command("start")
def sync_start(
    source: str = typer.Option(..., "--source", help="Source URI."),
    target: str = typer.Option(..., "--target", help="Target URI."),
    migration_id: Optional[str] = typer.Option(None, "--id", help="Migration id (default: generated)."),
    mode: str = typer.Option("journal", "--mode", help="journal (JournalingWriter) or passes (no journal)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    max_chunks: Optional[int] = typer.Option(None, "--max-chunks", help="Stop after N chunks."),
    state: Optional[Path] = StateOpt,
) -> None:
    """Register a sync migration (if new) and run or resume its bulk copy with watermarks."""
    from vmkit.sync import Sync

    store = _store(state)
    existing = _continuing(store, migration_id, source, target)
    if existing:
        sync = _run(lambda: Sync.open(existing, store))
    else:
        sync = _run(lambda: Sync.create(source, target, migration_id=migration_id, state=store,
                                        mode=mode, batch_size=batch_size))
    typer.echo(str(_run(lambda: sync.bulk_copy(max_chunks=max_chunks))))


@sync_app.command("catch-up")
def sync_catch_up(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """Apply the journal (re-reading each id) until the lag is under one batch."""
    sync = _open_sync(migration_id, state)
    typer.echo(str(_run(sync.catch_up)))


@sync_app.command("verify")
def sync_verify(
    migration_id: str = IdOpt,
    clean: int = typer.Option(2, "--clean", min=1, help="Clean passes in a row required."),
    max_passes: int = typer.Option(10, "--max-passes", min=1),
    state: Optional[Path] = StateOpt,
) -> None:
    """Fingerprint passes (256 id buckets), repairing what the journal does not explain.
    Exit 1 unless CLEAN clean passes in a row were reached."""
    sync = _open_sync(migration_id, state)
    st = _run(lambda: sync.verify(clean_required=clean, max_passes=max_passes))
    typer.echo(str(st))
    if st.clean_passes < clean:
        raise typer.Exit(1)


@sync_app.command("cutover")
def sync_cutover(
    migration_id: str = IdOpt,
    alias: Optional[str] = typer.Option(None, "--alias", help="Switch this alias to the target (Qdrant)."),
    state: Optional[Path] = StateOpt,
) -> None:
    """After two clean passes: drain the last events, switch the alias (or record the cutover
    and say what to repoint); JournalingWriter writes then go to the target first."""
    sync = _open_sync(migration_id, state)
    st = _run(lambda: sync.cutover(alias=alias))
    typer.echo(str(st))
    typer.secho(st.cutover["message"], fg="yellow" if st.cutover["how"] == "recorded" else "green")


@sync_app.command("rollback")
def sync_rollback(
    migration_id: str = IdOpt,
    max_passes: int = typer.Option(10, "--max-passes", min=1),
    state: Optional[Path] = StateOpt,
) -> None:
    """After cutover: replay the target-side journal into the source, verify, switch back.
    (Before cutover use `vmkit migrate rollback`.)"""
    sync = _open_sync(migration_id, state)
    st = _run(lambda: sync.rollback(max_passes=max_passes))
    typer.echo(str(st))
    typer.secho(st.cutover["rollback"], fg="yellow")


if __name__ == "__main__":
    app()
