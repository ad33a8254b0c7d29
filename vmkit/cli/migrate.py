"""``vmkit migrate``: start, resume, stop or roll back a migration (before cutover)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vmkit.cli.common import (
    IdOpt,
    NamespacesOpt,
    NsCollectionOpt,
    StateOpt,
    _continuing,
    _progress_bar,
    _run,
    _store,
)

migrate_app = typer.Typer(help="Start, resume, stop or roll back a migration.", no_args_is_help=True)


MaxRejectRateOpt = typer.Option(
    None, "--max-reject-rate", min=0.0, max=1.0,
    help="Stop when target refusals and unreadable source records pass this share of the "
         "records read over the last 10 batches (default 0.01; 0 disables).")
AcceptUnreadableOpt = typer.Option(
    False, "--accept-unreadable",
    help="Let the migration complete although some source records could not be read "
         "(they stay in the dead-letter table).")
WorkersOpt = typer.Option(
    None, "--workers", min=1,
    help="Run the plan's partitions on a local Dask cluster of N worker processes (vmkit[dask]).")
SchedulerOpt = typer.Option(
    None, "--scheduler", help="Run the plan's partitions on this Dask scheduler, e.g. tcp://HOST:8786.")
ChunkOpt = typer.Option(
    None, "--chunk-batches", min=1,
    help="On Dask: batches a worker copies before it acknowledges (a checkpoint each; "
         "default: as many as take about a second).")
PartitionsOpt = typer.Option(
    None, "--partitions", min=1,
    help="Parts the plan splits the source into (default with --workers/--scheduler: 4 per worker, else 8).")


def _executor(workers: Optional[int], scheduler: Optional[str]) -> dict[str, Any]:
    """Migration.run's executor arguments for --workers / --scheduler."""
    if workers is None and scheduler is None:
        return {}
    if workers is not None and scheduler is not None:
        typer.secho("error: give --workers (a local cluster) or --scheduler (an existing one), not both",
                    err=True, fg="red")
        raise typer.Exit(2)
    return {"executor": "dask", "cluster": scheduler, "workers": workers}


def _drive(migration: Any, max_batches: Optional[int], progress: bool, **executor: Any) -> None:
    """Run a migration with text progress. Exit 0 when it completed clean or stopped cleanly,
    1 when the copy ended but the migration could not complete (verification failed, unreadable
    source records), 3 when it completed with rejected records."""
    status = _run(migration.status)
    update, close = _progress_bar(status.expected_records) if progress else (None, lambda: None)
    try:
        status = _run(lambda: migration.run(max_batches=max_batches, on_batch=update, **executor))
    finally:
        close()
    typer.echo(str(status))
    if status.state == "completed" and status.records_rejected:
        typer.echo(f"completed with {status.records_rejected} rejected records: "
                   f"vmkit rejections --id {status.id}")
        raise typer.Exit(3)
    if status.state == "in_progress" and status.scan_done:
        why = (f"full verification failed (`vmkit validate --id {status.id} --full` lists every id; "
               f"`vmkit migrate repair --id {status.id}` copies them again)"
               if status.verification == "failed" else
               status.last_errors[0] if status.last_errors else f"see `vmkit status --id {status.id}`")
        typer.echo(f"not completed: {why}")
        raise typer.Exit(1)
    if status.state == "in_progress":
        how = " --workers N" if executor else ""
        typer.echo(f"stopped; resume with: vmkit migrate resume --id {status.id}{how}")


def _set_options(migration: Any, max_reject_rate: Optional[float], accept_unreadable: bool) -> None:
    changes: dict[str, Any] = {}
    if max_reject_rate is not None:
        changes["max_reject_rate"] = max_reject_rate
    if accept_unreadable:
        changes["accept_unreadable"] = True
    _run(lambda: migration.update_options(**changes))


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


def _load_plan(path: Optional[Path]) -> Any:
    if path is None:
        return None
    from vmkit.planning.plan import Plan

    return _run(lambda: Plan.from_json(path.read_text()))


@migrate_app.command("start")
def migrate_start(
    source: str = typer.Option(..., "--source", help="Source URI, e.g. qdrant:///data/a?collection=docs"),
    target: str = typer.Option(..., "--target", help="Target URI."),
    migration_id: Optional[str] = typer.Option(None, "--id", help="Migration id (default: generated)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    sample_rate: float = typer.Option(0.1, "--sample-rate", min=0.0, max=1.0),
    sample_records: int = typer.Option(1000, "--sample-records", min=0,
                                       help="Records re-read per sampled batch (0: all)."),
    min_similarity: float = typer.Option(0.98, "--min-similarity"),
    verify: bool = typer.Option(True, "--verify/--skip-verify", help="Full verification before completed."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches", help="Stop after N batches."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="A plan from `vmkit plan --out`."),
    into_nonempty: bool = typer.Option(False, "--into-nonempty-target",
                                       help="Start a new migration even if the target holds records."),
    namespaces: str = NamespacesOpt,
    namespace_collection: str = NsCollectionOpt,
    max_reject_rate: Optional[float] = MaxRejectRateOpt,
    accept_unreadable: bool = AcceptUnreadableOpt,
    workers: Optional[int] = WorkersOpt,
    scheduler: Optional[str] = SchedulerOpt,
    partitions: Optional[int] = PartitionsOpt,
    chunk_batches: Optional[int] = ChunkOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Plan and run a migration. Starting an existing id continues it (a finished one is left as
    is); a new one into a target that already holds records is refused unless asked for."""
    from vmkit.migration.runner import Migration

    executor = _executor(workers, scheduler)
    if partitions is None and executor:
        partitions = 4 * workers if workers else 8
    store = _store(state)
    existing = _continuing(store, migration_id, source, target)
    if existing:
        migration = Migration.open(existing, store)
    else:
        if not into_nonempty:
            _refuse_nonempty_target(store, migration_id, target)
        migration = _run(lambda: Migration.create(
            source, target, migration_id=migration_id, state=store, plan=_load_plan(plan_file),
            batch_size=batch_size, sample_rate=sample_rate, sample_records=sample_records,
            min_similarity=min_similarity, verify=verify,
            namespace_policy=namespaces, namespace_collection=namespace_collection,
            partitions=partitions or 0, **({"chunk_batches": chunk_batches} if chunk_batches else {})))
        typer.echo(str(migration.plan))
    _set_options(migration, max_reject_rate, accept_unreadable)
    _drive(migration, max_batches, progress, **executor)


@migrate_app.command("resume")
def migrate_resume(
    migration_id: str = IdOpt,
    max_batches: Optional[int] = typer.Option(None, "--max-batches"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Resume with this plan instead."),
    accept_plan_change: bool = typer.Option(False, "--accept-plan-change",
                                            help="Allow a --plan that changes what happens to the data."),
    max_reject_rate: Optional[float] = MaxRejectRateOpt,
    accept_unreadable: bool = AcceptUnreadableOpt,
    workers: Optional[int] = WorkersOpt,
    scheduler: Optional[str] = SchedulerOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Continue from the last checkpoint (a partitioned migration: from each partition's own)."""
    from vmkit.migration.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    new_plan = _load_plan(plan_file)
    if new_plan is not None:
        _run(lambda: migration.replan(new_plan, accept_change=accept_plan_change))
    _set_options(migration, max_reject_rate, accept_unreadable)
    _drive(migration, max_batches, progress, **_executor(workers, scheduler))


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
    from vmkit.migration.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    typer.echo(str(_run(lambda: migration.rollback(drop_target=drop_target))))


@migrate_app.command("repair")
def migrate_repair(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """After a failed full verification (or unreadable source records): copy the records found
    missing or different again, delete extra ones vmkit wrote, verify again. Exit as migrate
    resume does: 0 completed, 3 completed with rejections, 1 still not completed."""
    from vmkit.migration.runner import Migration

    migration = _run(lambda: Migration.open(migration_id, _store(state)))
    typer.echo(str(_run(migration.repair)))
    status = _run(migration.status)
    typer.echo(str(status))
    if status.state == "completed" and status.records_rejected:
        raise typer.Exit(3)
    if status.state != "completed":
        raise typer.Exit(1)
