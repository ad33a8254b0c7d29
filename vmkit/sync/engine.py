"""Zero-downtime sync: bulk copy with DBLog watermarks, catch-up, verification passes, cutover,
rollback after cutover; and the no-journal mode (minimal downtime: a measured write freeze).

Per key-ordered chunk: low watermark = journal head; read; high watermark = head; drop rows with
events in (applied, high]; apply those events (``sync_apply``: once the source shows each
event's content hash); write the rest; commit {chunk cursor, applied seq} in one transaction.
A kill anywhere costs replays only. No SQLite write transaction is held across a network call.
The cutover (pause, switch, verified writes, abort) is in ``sync_cutover``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, ContextManager, Iterator, Union

from vmkit.core import crashpoints
from vmkit.core.errors import IllegalTransition, PlanError, StateError
from vmkit.planning.plan import Plan
from vmkit.state import journal as jr
from vmkit.state.journal import SyncStatus, sync_status
from vmkit.state.store import StateStore
from vmkit.sync.apply import NotVisible, apply_source, attach, dead_letters, prune, settle
from vmkit.sync.cutover import Cutover
from vmkit.sync.sides import Sides, compare, open_sides
from vmkit.sync.writer import JournalingWriter

log = logging.getLogger("vmkit.sync.engine")
Freeze = Union[ContextManager[Any], Callable[[], ContextManager[Any]]]
__all__ = ["JournalingWriter", "Sync", "SyncStatus", "sync_status"]


class Sync(Cutover):
    """The sync of one migration (``create``, ``enable`` or ``open``); every step resumes.

    ``visibility_s``: how long the source may take to show a journaled write (an eventually
    consistent source shows writes late) before applying it fails loudly."""

    renew_every_s = 10.0  # lease renewal during long work (passes, visibility waits)

    def __init__(self, store: StateStore, migration_id: str, visibility_s: float = 30.0) -> None:
        self.store, self.id, self.visibility_s = store, migration_id, visibility_s
        self._renewed = 0.0
        jr.ensure_tables(store)
        if jr.read_row(store, migration_id) is None:
            raise StateError(f"migration '{migration_id}' is not a sync migration")

    @classmethod
    def create(cls, source: str, target: str, *, migration_id: str | None = None, state: Any = None,
               mode: str = "journal", plan: Plan | None = None, **options: Any) -> "Sync":
        from vmkit.migration.runner import Migration  # (runner imports nothing of sync)
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
    def open(cls, migration_id: str, state: Any = None, visibility_s: float = 30.0) -> "Sync":
        return cls(state if isinstance(state, StateStore) else StateStore(state), migration_id, visibility_s)

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
        self._renewed = time.monotonic()
        sides = attach(open_sides(self.store, self.id), self.store, self.id)
        try:
            yield sides, lease
        finally:
            sides.close()
            self.store.release_lease(self.id, lease)

    def _commit(self, lease: str, **changes: Any) -> None:
        jr.commit(self.store, self.id, lease, **changes)  # renews the lease too
        self._renewed = time.monotonic()

    def _tick(self, lease: str) -> None:
        """During long work without commits: renew the lease (LeaseHeld if it was taken over)."""
        if time.monotonic() - self._renewed >= self.renew_every_s:
            self.store.renew_lease(self.id, lease)
            self._renewed = time.monotonic()

    def _apply(self, s: Sides, lease: str, side: str, upto: int, wait: bool = True) -> int:
        """Apply the ids of ``side``'s events up to ``upto``, committing as it goes: source
        events once the source shows their content hash, target events by re-reading. With
        ``wait=False`` (the bulk copy) it stops, without waiting, before the first source event
        the source does not show yet. Returns the seq applied up to."""
        col = "applied_seq" if side == "source" else "reverse_applied_seq"
        after = getattr(self._row(), col)
        while after < upto and (evs := jr.events(self.store, self.id, side, after, upto, s.plan.batch_size)):
            last = {k: seq for seq, k in evs}
            if side == "source":
                try:
                    apply_source(s, self.store, self.id, last, self.visibility_s if wait else 0.0,
                                 lambda: self._tick(lease))
                except NotVisible as exc:
                    if wait:
                        raise
                    upto = min(seq for seq, k in evs if k in exc.keys) - 1  # applied before it
                    evs = [(seq, k) for seq, k in evs if seq <= upto]
                    if not evs:
                        break
            else:
                s.to_source(list(last))
            after = evs[-1][0]
            self._commit(lease, **{col: after, "events_applied": ("+", len({k for _, k in evs}))})
        return int(after)

    def bulk_copy(self, max_chunks: int | None = None) -> SyncStatus:
        """Copy chunk by chunk between watermarks (crash points sync_window, sync_before_commit)."""
        with self._session() as (s, lease):
            if (row := self._row()).phase not in ("pending", "bulk"):
                return self.status()
            if (state := self.store.get(self.id).state) == "not_started":
                if s.target.describe() is None:
                    self.store.set_flag(self.id, "created_target", True)  # intent first: rollback may drop it
                    s.retry(s.target.create, s.plan.target)
                self.store.transition(self.id, "in_progress", "sync bulk copy started", lease=lease)
            elif state != "in_progress":
                raise IllegalTransition(self.id, state, "in_progress (sync bulk copy)")
            self._commit(lease, phase="bulk")
            done = 0
            while not row.scan_done and (max_chunks is None or done < max_chunks):
                low = jr.head(self.store, self.id)
                batch, nxt = s.retry(s.source.scan, row.cursor, s.plan.batch_size)
                crashpoints.hit("sync_window")
                high = jr.head(self.store, self.id)
                # rows with events not applied before the read: the events decide (a lagging
                # source may have shown such a row's older state to this read)
                moved = jr.keys_between(self.store, self.id, "source", min(low, self._row().applied_seq), high)
                applied = self._apply(s, lease, "source", high, wait=False)  # the catch-up waits
                keep = [i for i, rid in enumerate(batch.ids) if (batch.namespace, rid) not in moved]
                written = s.write_rows(batch.take(keep)) if keep else 0
                crashpoints.hit("sync_before_commit")
                self._commit(lease, cursor=nxt, scan_done=int(nxt is None), applied_seq=applied, chunks=("+", 1),
                             rows_read=("+", len(batch)), rows_written=("+", written),
                             rows_dropped=("+", len(batch) - len(keep)))
                row, done = self._row(), done + 1
            if row.scan_done:
                s.retry(s.target.finish_load)  # e.g. pgvector's index, built once after the load
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
        """Compare, and repair what the journal does not explain. Ids with events newer than the
        pass's start are pending, not dirty: applied around the compare (or by the next catch-up)
        and proved by a later pass or the cutover; events up to the start of a clean pass are pruned."""
        t0, h0 = time.monotonic(), jr.head(self.store, self.id, side)
        self._apply(s, lease, side, h0)
        skip = self.store.refused_keys(self.id) | dead_letters(self.store, self.id)
        diff = compare(s, skip=skip, tick=lambda: self._tick(lease))
        h2 = jr.head(self.store, self.id, side)
        self._apply(s, lease, side, h2)
        h3 = jr.head(self.store, self.id, side)  # ids with events newer than the pass's start: pending
        moved = {tk for k in jr.keys_between(self.store, self.id, side, h0, h3) if (tk := s.target_key(k))}
        todo = {tk: sk for tk, sk in diff.keys().items() if tk not in moved}
        if todo:  # a store showing this sync's writes late is not a difference
            todo = settle(s, self.store, self.id, side, todo, skip, self.visibility_s, lambda: self._tick(lease))
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
        if not todo:  # events up to the pass's start are applied and verified
            prune(self.store, self.id, side, h0)
        return info

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
                self._switch_or_undo(s, lease, "target", None)
            try:
                self.store.transition(self.id, "rolled_back", "rolled back after cutover", lease=lease)
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
                self._complete(lease)
        return self.status()

    def run(self, alias: str | None = None, max_rounds: int = 6) -> SyncStatus:
        """Bulk copy, then rounds of catch-up + verification until two clean passes (at most
        ``max_rounds``), and the cutover (journal mode); resumes wherever it stopped."""
        if self.bulk_copy().phase in ("catch_up", "verified"):
            for _ in range(max_rounds):
                self.catch_up()
                if self.verify().phase == "verified":
                    break
            else:
                raise StateError(f"sync '{self.id}': no two clean passes in a row after {max_rounds} rounds "
                                 f"of catch-up and verification; not switched (see `vmkit status --id {self.id}`)")
        return self.cutover(alias=alias)


def _no_collections(mid: str) -> None:
    """Sync's keys, journal replay and alias cutover assume one target collection."""
    raise PlanError(f"migration '{mid}': sync does not support namespace_policy='collections' yet; "
                    "use 'field' (the default) or `vmkit migrate`")
