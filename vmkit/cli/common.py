"""What the CLI's command groups share: the common options, logging set-up, the one-line
error wrapper ``_run``, the state store opener, the progress bar and the ``start`` id check."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from vmkit.core.errors import VmkitError

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
    from vmkit.state.store import StateStore

    return _run(lambda: StateStore(state))


def _progress_bar(total: int) -> tuple[Callable[[Any], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit="rec", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
    def update(p: Any) -> None:
        bar.n = p.records_read
        bar.set_postfix(batches=p.batches, rejected=p.records_rejected, refresh=False)
        bar.refresh()
    return update, bar.close


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
