"""Zero-downtime sync: bulk copy with DBLog watermarks, catch-up, verification passes, cutover,
rollback after cutover; and the no-journal mode (minimal downtime: a measured write freeze).

Per key-ordered chunk: low watermark = journal head; read; high watermark = head; drop rows with
events in (low, high]; apply events in (applied, high] by re-reading their ids; write the rest;
commit {chunk cursor, applied seq} in one transaction. A kill anywhere costs replays only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, ContextManager, Iterator, Union

from vmkit import crashpoints
from vmkit import journal as jr
from vmkit.errors import IllegalTransition, PlanError, StateError
from vmkit.journal import JournalingWriter, SyncStatus, sync_status
from vmkit.plan import Plan
from vmkit.state import StateStore
from vmkit.sync_verify import Sides, compare, open_sides, repoint, reverse_plan

log = logging.getLogger("vmkit.sync")
Freeze = Union[ContextManager[Any], Callable[[], ContextManager[Any]]]
__all__ = ["JournalingWriter", "Sync", "SyncStatus", "sync_status"]


class Sync:
    """The sync of one migration (``create``, ``enable`` or ``open``); every step resumes."""

    def __init__(self, store: StateStore, migration_id: str) -> None:
        self.store, self.id = store, migration_id
        jr.ensure_tables(store)
        if jr.read_row(store, migration_id) is None:
            raise StateError(f"migration '{migration_id}' is not a sync migration")

    @classmethod
    def create(cls, source: str, target: str, *, migration_id: str | None = None, state: Any = None,
               mode: str = "journal", plan: Plan | None = None, **options: Any) -> "Sync":
        from vmkit.runner import Migration  # (runner imports nothing of sync)
        if "collections" in (options.get("namespace_policy"), plan and plan.namespace_policy):
            _no_collections(migration_id or "(new)")  # refused before anything is stored
        return cls.enable(Migration.create(source, target, migration_id=migration_id, state=state,
                                           plan=plan, **options), mode)

    @classmethod
    def enable(cls, migration: Any, mode: str = "journal") -> "Sync":
        """A not-started Migration becomes a sync: "journal" (JournalingWriter) or "passes"."""
        if (state := migration.store.get(migration.id).state) != "not_started" or mode not in ("journal", "passes"):
            raise IllegalTransition(migration.id, state, f"a {mode!r} sync (mode journal or passes, not started)")
        if migration.plan.namespace_policy == "collections":
            _no_collections(migration.id)
        jr.create_row(migration.store, migration.id, mode)
        migration.store.event(migration.id, "sync enabled", mode)
        return cls(migration.store, migration.id)

    @classmethod
    def open(cls, migration_id: str, state: Any = None) -> "Sync":
        return cls(state if isinstance(state, StateStore) else StateStore(state), migration_id)

    def status(self) -> SyncStatus:
        return sync_status(self.store, self.id)  # type: ignore[return-value]

    def writer(self, **kwargs: Any) -> JournalingWriter:
        return JournalingWriter(self.id, self.store, **kwargs)

    def _row(self) -> Any:  # the sync row; JSON columns decoded
        return jr.read_row(self.store, self.id)

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[Sides, str]]:
        if self.store.get(self.id).state == "rolled_back" and self._row().phase != "rolled_back_after_cutover":
            raise IllegalTransition(self.id, "rolled_back", "synced (it was rolled back before cutover)")
        lease = self.store.acquire_lease(self.id)
        sides = open_sides(self.store, self.id)
        try:
            yield sides, lease
        finally:
            sides.close()
            self.store.release_lease(self.id, lease)

    def _commit(self, lease: str, **changes: Any) -> None:
        jr.commit(self.store, self.id, lease, **changes)

    def _apply(self, s: Sides, lease: str, side: str, upto: int) -> None:
        """Re-read and apply the ids of ``side``'s events up to ``upto``, committing as it goes."""
        col = "applied_seq" if side == "source" else "reverse_applied_seq"
        after = getattr(self._row(), col)
        while after < upto and (evs := jr.events(self.store, self.id, side, after, upto, s.plan.batch_size)):
            keys = list(dict.fromkeys(k for _, k in evs))
            s.to_target(keys) if side == "source" else s.to_source(keys)
            after = evs[-1][0]
            self._commit(lease, **{col: after, "events_applied": ("+", len(keys))})

    def bulk_copy(self, max_chunks: int | None = None) -> SyncStatus:
        """Copy chunk by chunk between watermarks (crash points sync_window, sync_before_commit)."""
        with self._session() as (s, lease):
            if (row := self._row()).phase not in ("pending", "bulk"):
                return self.status()
            if (state := self.store.get(self.id).state) == "not_started":
                if s.target.describe() is None:
                    self.store.set_flag(self.id, "created_target", True)  # intent first: rollback may drop it
                    s.retry(s.target.create, s.plan.target)
                self.store.transition(self.id, "in_progress", "sync bulk copy started")
            elif state != "in_progress":
                raise IllegalTransition(self.id, state, "in_progress (sync bulk copy)")
            self._commit(lease, phase="bulk")
            done = 0
            while not row.scan_done and (max_chunks is None or done < max_chunks):
                low = jr.head(self.store, self.id)
                batch, nxt = s.retry(s.source.scan, row.cursor, s.plan.batch_size)
                crashpoints.hit("sync_window")
                high = jr.head(self.store, self.id)
                moved = jr.keys_between(self.store, self.id, "source", low, high)
                self._apply(s, lease, "source", high)
                keep = [i for i, rid in enumerate(batch.ids) if (batch.namespace, rid) not in moved]
                written = s.write_rows(batch.take(keep)) if keep else 0
                crashpoints.hit("sync_before_commit")
                self._commit(lease, cursor=nxt, scan_done=int(nxt is None), applied_seq=high, chunks=("+", 1),
                             rows_read=("+", len(batch)), rows_written=("+", written),
                             rows_dropped=("+", len(batch) - len(keep)))
                row, done = self._row(), done + 1
            if row.scan_done:
                self._commit(lease, phase="catch_up")
                self.store.event(self.id, "sync bulk copy done", f"{row.rows_read} rows read")
        return self.status()

    def _lead(self, what: str) -> str:
        if (phase := self._row().phase) in ("catch_up", "verified", "cut_over"):
            return "target" if phase == "cut_over" else "source"
        raise StateError(f"sync '{self.id}' is {phase}: cannot {what} now (bulk copy first, if not done)")

    def catch_up(self, max_rounds: int = 10_000) -> SyncStatus:
        """Apply the leading side's journal until the lag is under one batch."""
        with self._session() as (s, lease):
            side = self._lead("catch up")
            col = "applied_seq" if side == "source" else "reverse_applied_seq"
            for _ in range(max_rounds):
                self._apply(s, lease, side, jr.head(self.store, self.id, side))
                if jr.pending(self.store, self.id, side, getattr(self._row(), col)) < s.plan.batch_size:
                    break
        return self.status()

    def verify(self, clean_required: int = 2, max_passes: int = 10) -> SyncStatus:
        """Fingerprint passes until ``clean_required`` clean ones in a row (phase "verified")."""
        with self._session() as (s, lease):
            side = self._lead("verify")
            ok = self._converge(s, lease, side, clean_required, max_passes, fail=False)
            if side == "source":
                self._commit(lease, phase="verified" if ok else "catch_up")
        return self.status()

    def _converge(self, s: Sides, lease: str, side: str, need: int, max_passes: int, fail: bool = True) -> bool:
        for _ in range(max_passes):
            if self._pass(s, lease, side)["clean"] and self._row().clean_passes >= need:
                return True
        if fail:
            raise StateError(f"sync '{self.id}': the sides still differ after {max_passes} passes; not switched")
        return False

    def _pass(self, s: Sides, lease: str, side: str) -> dict[str, Any]:
        """Compare, and repair what the journal does not explain. Differences on ids with events
        during the pass are changes in flight, re-applied by the catch-up around the compare."""
        t0, h0 = time.monotonic(), jr.head(self.store, self.id, side)
        self._apply(s, lease, side, h0)
        diff = compare(s, skip=self.store.refused_keys(self.id))
        h2 = jr.head(self.store, self.id, side)
        self._apply(s, lease, side, h2)
        moved = {tk for k in jr.keys_between(self.store, self.id, side, h0, h2) if (tk := s.target_key(k))}
        todo = {tk: sk for tk, sk in diff.keys().items() if tk not in moved}
        toward = "target" if side == "source" else "source"
        if todo:
            s.repair(todo, toward)
        info = {**diff.counts(), "clean": not todo, "toward": toward, "in_flight": len(diff.keys()) - len(todo),
                "repaired": len(todo), "repaired_ids": [[ns, rid] for ns, rid in list(todo)[:100]],
                "seconds": round(time.monotonic() - t0, 3)}
        info["summary"] = (f"pass {'clean' if not todo else 'NOT clean'}: {diff.buckets} buckets differed, "
                           f"{info['in_flight']} ids in flight, {len(todo)} repaired toward the {toward}")
        self._commit(lease, passes=("+", 1), clean_passes=self._row().clean_passes + 1 if not todo else 0,
                     repaired=("+", len(todo)), last_pass=info)
        log.info("sync %s: %s", self.id, info["summary"])
        return info

    def cutover(self, alias: str | None = None, clean_required: int = 2) -> SyncStatus:
        """Make the target lead (after ``clean_required`` clean passes): through its alias where
        it has one, else recorded here with a message saying exactly what to repoint."""
        with self._session() as (s, lease):
            if (row := self._row()).phase == "cut_over":
                return self.status()
            if row.mode != "journal":
                raise StateError("a sync without a journal cuts over in converge_without_journal(freeze)")
            if row.phase != "cutting_over" and not (row.phase == "verified" and row.clean_passes >= clean_required):
                raise StateError(f"sync '{self.id}' is {row.phase} with {row.clean_passes} clean passes: cutover "
                                 f"needs {clean_required} in a row (`vmkit sync verify --id {self.id}`)")
            self._pause(s, lease, "source")
            self._switch(s, lease, "source", alias)
            self._complete()
        return self.status()

    def _pause(self, s: Sides, lease: str, side: str) -> None:
        """Writers wait from here until the switch (a cutover without a way back is refused)."""
        self._apply(s, lease, side, jr.head(self.store, self.id, side))  # catch up while writes flow
        if side == "source":
            s.reverse = reverse_plan(s.source, s.target, s.plan)
            if s.reverse.errors:
                raise PlanError("no way back after cutover:\n" + "\n".join(map(str, s.reverse.errors)))
            self._commit(lease, phase="cutting_over", reverse_plan=s.reverse.to_json())
        else:
            self._commit(lease, phase="rolling_back")

    def _switch(self, s: Sides, lease: str, side: str, alias: str | None) -> None:
        """Drain ``side``'s last events; repoint + flip the phase in one (straggler-blocking) txn."""
        t0, col = time.monotonic(), "applied_seq" if side == "source" else "reverse_applied_seq"
        try:
            self._apply(s, lease, side, jr.head(self.store, self.id, side))
            with self.store.transaction() as db:
                jr.check_lease(db, self.id, lease)
                row, h = self._row(), jr.head(self.store, self.id, side)
                keys = jr.keys_between(self.store, self.id, side, getattr(row, col), h)
                s.to_target(keys) if side == "source" else s.to_source(keys)
                crashpoints.hit("sync_switch")
                info = repoint(s, "target" if side == "source" else "source", alias, row.cutover or {})
                pause = round(time.monotonic() - t0, 4)
                cut = ({**info, "pause_s": pause} if side == "source" else
                       {**row.cutover, "rollback": info["message"], "rollback_pause_s": pause})
                jr.update_row(db, self.id, **{col: h}, clean_passes=0, cutover=cut,
                           phase="cut_over" if side == "source" else "rolled_back_after_cutover")
        except Exception:
            self._commit(lease, phase="verified" if side == "source" else "cut_over")  # writers resume
            raise
        self.store.event(self.id, "sync cut over" if side == "source" else "sync rolled back", info["message"])
        log.warning("sync %s: %s (writes paused %.3f s)", self.id, info["message"], pause)

    def _frozen_switch(self, s: Sides, lease: str, side: str, freeze: Freeze, alias: str | None,
                       max_passes: int) -> None:
        """No journal: inside the caller's write freeze, passes until one is clean (nothing
        changes under the freeze, so one clean pass after the last repair proves it), switch."""
        with freeze() if callable(freeze) else freeze:  # type: ignore[operator]
            t0 = time.monotonic()
            self._converge(s, lease, side, 1, max_passes)
            self._pause(s, lease, side)
            self._switch(s, lease, side, alias)
            freeze_s = time.monotonic() - t0
        self._commit(lease, freeze_s=freeze_s)
        log.warning("sync %s: writes were frozen for %.3f s", self.id, freeze_s)

    def _complete(self) -> None:
        n = (self._row().last_pass or {}).get("records", 0)
        self.store.set_verification(self.id, "passed", dict(passed=True, how="sync passes + final drain", matched=n,
                                    source_records=n, missing_count=0, extra_count=0, mismatched_count=0))
        if self.store.get(self.id).state == "in_progress":
            self.store.transition(self.id, "completed", "sync cut over after verification")

    def rollback(self, clean_required: int = 2, max_passes: int = 10, freeze: Freeze | None = None) -> SyncStatus:
        """After cutover: replay the target-side journal into the source, verify source vs target
        (passes repairing toward the source), switch back. Without a journal: under ``freeze``."""
        with self._session() as (s, lease):
            if (row := self._row()).phase == "rolled_back_after_cutover":
                return self.status()
            if row.phase not in ("cut_over", "rolling_back"):
                raise StateError(f"sync '{self.id}' is {row.phase}, not cut over: roll back with "
                                 f"`vmkit migrate rollback --id {self.id}` (traffic stays on the source)")
            s.reverse = Plan.from_json(row.reverse_plan)
            if row.mode == "passes" and freeze is None:
                raise StateError("a sync without a journal rolls back under a write freeze: pass freeze=")
            if freeze is not None:
                self._frozen_switch(s, lease, "target", freeze, None, max_passes)
            else:
                if row.phase == "cut_over":  # each pass first applies the target-side journal
                    self._converge(s, lease, "target", clean_required, max_passes)
                    self._pause(s, lease, "target")
                self._switch(s, lease, "target", None)
            try:
                self.store.transition(self.id, "rolled_back", "rolled back after cutover")
            except IllegalTransition:  # completed -> rolled_back is not a transition (yet)
                self.store.event(self.id, "sync rolled back after cutover", "the migration stays completed")
        return self.status()

    def converge_without_journal(self, freeze: Freeze, *, alias: str | None = None, max_passes: int = 10,
                                 threshold: int | None = None) -> SyncStatus:
        """No journal: bulk copy; fingerprint-diff passes (copy changed/new ids, delete removed ones)
        until one repairs at most ``threshold`` ids (default one batch); then inside ``freeze`` (the
        caller's write pause) passes until one is clean, and the cutover. The freeze is measured."""
        if self._row().mode != "passes":
            raise StateError(f"sync '{self.id}' has a journal: use catch_up / verify / cutover")
        self.bulk_copy()
        with self._session() as (s, lease):
            if self._row().phase != "cut_over":
                limit = s.plan.batch_size if threshold is None else threshold
                for _ in range(max_passes):
                    if self._pass(s, lease, "source")["repaired"] <= limit:
                        break
                self._frozen_switch(s, lease, "source", freeze, alias, max_passes)
                self._complete()
        return self.status()

    def run(self, alias: str | None = None) -> SyncStatus:
        """Bulk copy, catch up, verify and cut over (journal mode), resuming wherever it stopped."""
        if self.bulk_copy().phase in ("catch_up", "verified"):
            self.catch_up()
            self.verify()
        return self.cutover(alias=alias)


def _no_collections(mid: str) -> None:
    """Sync's keys, journal replay and alias cutover assume one target collection."""
    raise PlanError(f"migration '{mid}': sync does not support namespace_policy='collections' yet; "
                    "use 'field' (the default) or `vmkit migrate`")
