"""The text side of progress: ``Meter`` (done, total, rate, ETA) and ``text_progress``, a tqdm
bar fed by a controller's updates (headless notebooks, the CLI)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # the controller imports this module
    from vmkit.notebook.controller import MigrationController, Update


@dataclass(frozen=True)
class Meter:
    """Progress of the current session, with a rate and an ETA (None until known)."""

    done: int
    total: int
    elapsed_s: float
    rate: float | None  # records/s in this session, time paused left out; None unless copying
    eta_s: float | None

    def text(self, ncols: int = 80) -> str:
        from tqdm import tqdm

        return tqdm.format_meter(self.done, self.total or None, self.elapsed_s, ncols=ncols,
                                 unit="rec", rate=self.rate, ascii=True)


def text_progress(controller: MigrationController, file: IO[str] | None = None,
                  mininterval: float = 0.5) -> Callable[[], None]:
    """A tqdm text bar fed by the controller's updates (headless notebooks, the CLI).
    Returns a function that closes the bar and detaches it."""
    from tqdm import tqdm

    expected = controller.status().expected_records
    bar = tqdm(total=expected or None, unit="rec", file=file or sys.stderr,
               mininterval=mininterval, ascii=True, desc=controller.migration.id)
    bar.n = bar.last_print_n = controller.status().records_read

    def update(u: Update) -> None:
        if u.progress is not None:
            bar.n = u.progress.records_read
            p = u.progress
            bar.set_postfix_str(f"batches {p.batches}, rejected {p.records_rejected}",
                                refresh=False)
            bar.update(0)  # let tqdm rate-limit the redraws
        if u.kind != "progress":
            bar.set_description_str(f"{controller.migration.id} {u.phase}")

    remove = controller.add_listener(update)

    def close() -> None:
        remove()
        bar.refresh()
        bar.close()

    return close
