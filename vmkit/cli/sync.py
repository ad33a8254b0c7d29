"""``vmkit sync``: zero-downtime sync (bulk copy, journal catch-up, verification passes,
cutover and rollback after cutover)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vmkit.cli.common import IdOpt, StateOpt, _continuing, _run, _store

sync_app = typer.Typer(help="Zero-downtime sync: journaled writes, catch-up, verification passes, "
                            "cutover and rollback after cutover.", no_args_is_help=True)


VisibilityOpt = typer.Option(30.0, "--visibility-s", min=0.0,
                             help="How long the source may take to show a journaled write (eventually "
                                  "consistent sources show writes late) before applying it fails.")


def _open_sync(migration_id: str, state: Optional[Path], visibility_s: float = 30.0) -> Any:
    from vmkit.sync.engine import Sync

    store = _store(state)
    return _run(lambda: Sync.open(migration_id, store, visibility_s=visibility_s))


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
    from vmkit.sync.engine import Sync

    store = _store(state)
    existing = _continuing(store, migration_id, source, target)
    if existing:
        sync = _run(lambda: Sync.open(existing, store))
    else:
        sync = _run(lambda: Sync.create(source, target, migration_id=migration_id, state=store,
                                        mode=mode, batch_size=batch_size))
    typer.echo(str(_run(lambda: sync.bulk_copy(max_chunks=max_chunks))))


@sync_app.command("catch-up")
def sync_catch_up(migration_id: str = IdOpt, visibility_s: float = VisibilityOpt,
                  state: Optional[Path] = StateOpt) -> None:
    """Apply the journal until the lag is under one batch (each id once the source shows the
    journaled content; exit 2 naming the ids the source did not show within --visibility-s)."""
    sync = _open_sync(migration_id, state, visibility_s)
    typer.echo(str(_run(sync.catch_up)))


@sync_app.command("verify")
def sync_verify(
    migration_id: str = IdOpt,
    clean: int = typer.Option(2, "--clean", min=1, help="Clean passes in a row required."),
    max_passes: int = typer.Option(10, "--max-passes", min=1),
    visibility_s: float = VisibilityOpt, state: Optional[Path] = StateOpt,
) -> None:
    """Fingerprint passes (256 id buckets), repairing what the journal does not explain.
    Exit 1 unless CLEAN clean passes in a row were reached."""
    sync = _open_sync(migration_id, state, visibility_s)
    st = _run(lambda: sync.verify(clean_required=clean, max_passes=max_passes))
    typer.echo(str(st))
    if st.clean_passes < clean:
        raise typer.Exit(1)


@sync_app.command("cutover")
def sync_cutover(
    migration_id: str = IdOpt,
    alias: Optional[str] = typer.Option(None, "--alias", help="Switch this alias to the target (Qdrant)."),
    visibility_s: float = VisibilityOpt, state: Optional[Path] = StateOpt,
) -> None:
    """After two clean passes: drain the last events, prove the ids written since, switch the
    alias (or record the cutover and say what to repoint); JournalingWriter writes then go to
    the target first. Run it again to finish a cutover that was killed inside its switch."""
    sync = _open_sync(migration_id, state, visibility_s)
    st = _run(lambda: sync.cutover(alias=alias))
    typer.echo(str(st))
    typer.secho(st.cutover["message"], fg="yellow" if st.cutover["how"] == "recorded" else "green")


@sync_app.command("abort")
def sync_abort(migration_id: str = IdOpt, state: Optional[Path] = StateOpt) -> None:
    """Undo a cutover (or rollback) that did not finish, e.g. killed inside its switch: the alias
    goes back and application writes go to the side that led before."""
    sync = _open_sync(migration_id, state)
    st = _run(sync.abort)
    typer.echo(str(st))
    typer.secho(f"switch undone: writes go to the {'source' if st.phase == 'verified' else 'target'} again",
                fg="yellow")


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
