"""The rules that stop a run or keep it from ``completed``, each a check over what the state
store holds: the rejection breaker, automatic rollback on sampled failures, and the refusal to
complete while source records could not be read."""

from __future__ import annotations

import logging
from collections import deque
from typing import Sequence

from vmkit.core.errors import AutoRolledBack, BreakerTripped
from vmkit.core.options import MigrationOptions
from vmkit.core.records import SOURCE_UNREADABLE, Rejection
from vmkit.state.store import StateStore

log = logging.getLogger("vmkit.migration.guards")

# Rejections the breaker counts: refusals by the target and records the source could not hand
# over. Rejections by the plan's own rules are announced by the plan and predicted exactly by a
# dry run, so they do not trip it.
BREAKER_FIELDS = frozenset({"record", SOURCE_UNREADABLE})
# The breaker judges a rate once its window is full or holds this many records read: one
# refusal in a first batch of 50 is no rate.
BREAKER_MIN_RECORDS = 1000


class RejectionBreaker:
    """Stops a run (resumable) when refusals and unreadable records pass ``max_reject_rate``
    of the records read in this run's last ``reject_window`` batches."""

    def __init__(self, store: StateStore, migration_id: str, options: MigrationOptions) -> None:
        self.store, self.id, self.bound = store, migration_id, options.max_reject_rate
        self.window: deque[tuple[int, int]] = deque(maxlen=max(1, options.reject_window))

    def record(self, read: int, rejected: Sequence[Rejection]) -> None:
        """One committed batch; raise BreakerTripped if the rate now passes the bound."""
        self.window.append((read, sum(1 for r in rejected if r.field in BREAKER_FIELDS)))
        read_all, bad = sum(r for r, _ in self.window), sum(b for _, b in self.window)
        judged = len(self.window) == self.window.maxlen or read_all >= BREAKER_MIN_RECORDS
        if not self.bound or not judged or bad / read_all <= self.bound:
            return
        msg = (f"{bad} of {read_all} records read in the last {len(self.window)} batches were refused "
               f"by the target or unreadable ({bad / read_all:.1%}, over max_reject_rate {self.bound:.1%}); "
               f"see `vmkit rejections --id {self.id}`, fix the cause and resume, or resume with "
               f"--max-reject-rate to accept more")
        self.store.record_error(self.id, None, "breaker", msg)
        log.error("migration %s stopped: %s", self.id, msg)
        raise BreakerTripped(f"migration '{self.id}' stopped: {msg}")


def roll_back_if_sampling_fails(store: StateStore, migration_id: str, options: MigrationOptions) -> None:
    """Mark the migration rolled_back (AutoRolledBack) once the sampled failure rate passes
    ``auto_rollback_rate`` over at least ``auto_rollback_min_records`` sampled records."""
    limit = options.auto_rollback_rate
    if limit is None:
        return
    n, failures = store.query(
        "SELECT coalesce(sum(n),0), coalesce(sum(failures),0) FROM validations WHERE migration_id=?",
        migration_id)[0]
    if n >= options.auto_rollback_min_records and failures / n > limit:
        msg = f"sampled failure rate {failures}/{n} is over {limit:.1%}: rolling back"
        log.error("migration %s: %s", migration_id, msg)
        store.transition(migration_id, "rolled_back", msg)
        raise AutoRolledBack(f"migration '{migration_id}': {msg}")


def unreadable_refusal(store: StateStore, migration_id: str, options: MigrationOptions,
                       unreadable: int) -> str | None:
    """Why the migration may not complete yet (``unreadable`` source records, dead-lettered as
    source_unreadable, not accepted), recorded as an error; None when it may."""
    if not unreadable or options.accept_unreadable:
        return None
    msg = (f"{unreadable} source records could not be read (dead-lettered as {SOURCE_UNREADABLE}: "
           f"`vmkit rejections --id {migration_id}`), so the migration stays in_progress: "
           f"`vmkit migrate repair --id {migration_id}` reads them again, or "
           f"`vmkit migrate resume --id {migration_id} --accept-unreadable` accepts their loss")
    store.record_error(migration_id, None, SOURCE_UNREADABLE, msg)
    log.error("migration %s: %s", migration_id, msg)
    return msg
