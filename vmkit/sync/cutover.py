"""The cutover of a sync (and the switch back of a rollback after cutover): pause, drain,
prove, switch; and the ways out of a switch that did not finish.

Pause: the phase becomes ``cutting_over`` and JournalingWriter calls wait (a writer whose append
lands after the flip brings its own ids along). Switch: apply every event journaled before the
flip, prove every id not yet verified (the writes applied during pause and switch included) equal
on both sides, repoint, and flip to ``cut_over`` in one short transaction. No SQLite write
transaction is held across a network call.

A failure or Ctrl-C inside the switch undoes it (alias back, phase back to ``verified``: writes
flow to the source again). After a kill, ``vmkit sync cutover --id`` finishes the switch
(every step is idempotent) and ``vmkit sync abort --id`` undoes it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vmkit.core import crashpoints
from vmkit.core.errors import PlanError, StateError
from vmkit.state import journal as jr
from vmkit.state.journal import SyncStatus
from vmkit.sync.apply import apply_source, dead_letters, differing, last_seqs, prune
from vmkit.sync.sides import Sides, reverse_plan

log = logging.getLogger("vmkit.sync.engine")


class Cutover:
    """Mixed into ``Sync`` (which provides _session, _row, _commit, _apply, _tick, status)."""

    store: Any
    id: str
    visibility_s: float

    def cutover(self, alias: str | None = None, clean_required: int = 2) -> SyncStatus:
        """Make the target lead (after ``clean_required`` clean passes): through its alias where
        it has one, else recorded here with a message saying exactly what to repoint. Finishes
        a switch that a kill interrupted (phase ``cutting_over``)."""
        with self._session() as (s, lease):  # type: ignore[attr-defined]
            if (row := self._row()).phase == "cut_over":  # type: ignore[attr-defined]
                if self.store.get(self.id).state == "in_progress":  # killed after the flip
                    self._complete(lease)
                return self.status()  # type: ignore[attr-defined,no-any-return]
            if row.mode != "journal":
                raise StateError("a sync without a journal cuts over in converge_without_journal(freeze)")
            if row.phase != "cutting_over" and not (row.phase == "verified" and row.clean_passes >= clean_required):
                raise StateError(f"sync '{self.id}' is {row.phase} with {row.clean_passes} clean passes: cutover "
                                 f"needs {clean_required} in a row (`vmkit sync verify --id {self.id}`)")
            try:
                self._pause(s, lease, "source")
            except (Exception, KeyboardInterrupt):
                self._undo(s, lease, "source")
                raise
            self._switch_or_undo(s, lease, "source", alias)
            self._complete(lease)
        return self.status()  # type: ignore[attr-defined,no-any-return]

    def abort(self) -> SyncStatus:
        """Undo a cutover (or rollback) that did not finish: writes go back to the side that led."""
        with self._session() as (s, lease):  # type: ignore[attr-defined]
            phase = self._row().phase  # type: ignore[attr-defined]
            if phase not in jr.PAUSED:
                raise StateError(f"sync '{self.id}' is {phase}: no switch to abort"
                                 + (f" (after cutover: `vmkit sync rollback --id {self.id}`)" if phase == "cut_over" else ""))
            self._undo(s, lease, "source" if phase == "cutting_over" else "target")
        return self.status()  # type: ignore[attr-defined,no-any-return]

    def _pause(self, s: Sides, lease: str, side: str) -> None:
        """Writers wait from here until the switch (a cutover without a way back is refused)."""
        self._apply(s, lease, side, jr.head(self.store, self.id, side))  # type: ignore[attr-defined]
        if side == "source":
            s.reverse = reverse_plan(s.source, s.target, s.plan)
            if s.reverse.errors:
                raise PlanError("no way back after cutover:\n" + "\n".join(map(str, s.reverse.errors)))
            self._commit(lease, phase="cutting_over", reverse_plan=s.reverse.to_json())  # type: ignore[attr-defined]
        else:
            self._commit(lease, phase="rolling_back")  # type: ignore[attr-defined]

    def _switch_or_undo(self, s: Sides, lease: str, side: str, alias: str | None) -> None:
        try:
            self._switch(s, lease, side, alias)
        except (Exception, KeyboardInterrupt):  # a kill (SIGKILL) undoes nothing: cutover/abort
            self._undo(s, lease, side)
            raise

    def _switch(self, s: Sides, lease: str, side: str, alias: str | None) -> None:
        """Drain the events journaled before the pause, prove the ids, repoint, flip the phase."""
        t0, col = time.monotonic(), "applied_seq" if side == "source" else "reverse_applied_seq"
        h = jr.head(self.store, self.id, side)  # later appends saw the pause: their writers redo them
        self._apply(s, lease, side, h)  # type: ignore[attr-defined]
        checked = self._prove(s, lease, h) if side == "source" else 0
        crashpoints.hit("sync_switch")
        row = self._row()  # type: ignore[attr-defined]
        mark = row.cutover or {}
        if side == "source":  # an undo after a kill must know an alias may have moved, and from where
            mark = {**mark, "switching": True, "alias": alias}
            if alias and hasattr(s.target, "get_alias") and "alias_before" not in mark:
                mark["alias_before"] = s.retry(s.target.get_alias, alias)
            self._commit(lease, cutover=mark)  # type: ignore[attr-defined]
        info = repoint(s, "target" if side == "source" else "source", alias, mark)
        crashpoints.hit("sync_repointed")
        pause = round(time.monotonic() - t0, 4)
        cut = ({**info, "pause_s": pause, "checked": checked} if side == "source" else
               {**row.cutover, "rollback": info["message"], "rollback_pause_s": pause})
        with self.store.transaction() as db:
            jr.check_lease(db, self.id, lease)
            jr.update_row(db, self.id, **{col: h}, clean_passes=0, cutover=cut,
                          phase="cut_over" if side == "source" else "rolled_back_after_cutover")
        self.store.event(self.id, "sync cut over" if side == "source" else "sync rolled back", info["message"])
        log.warning("sync %s: %s (writes paused %.3f s)", self.id, info["message"], pause)

    def _prove(self, s: Sides, lease: str, h: int) -> int:
        """Every id with an event still in the journal up to ``h`` (not yet verified by a clean
        pass: the writes applied during pause and switch among them) equal on both sides. Ids
        with later events are pending (their writers bring them along). Returns the ids proved."""
        keys = jr.keys_between(self.store, self.id, "source", 0, h)
        skip = self.store.refused_keys(self.id) | dead_letters(self.store, self.id)
        deadline = time.monotonic() + self.visibility_s
        while True:
            later = jr.keys_between(self.store, self.id, "source", h, jr.head(self.store, self.id, "source"))
            bad = [k for k in differing(s, keys, skip) if k not in later]
            if not bad:
                return len(keys)
            if time.monotonic() >= deadline:
                raise StateError(f"sync '{self.id}': {len(bad)} ids written during the cutover differ between "
                                 f"source and target (e.g. {bad[:5]}); not switched, writes go to the source again")
            log.warning("sync %s: %d ids differ at the switch; applying them again", self.id, len(bad))
            self._tick(lease)  # type: ignore[attr-defined]
            apply_source(s, self.store, self.id, last_seqs(self.store, self.id, bad), self.visibility_s)
            time.sleep(0.05)

    def _undo(self, s: Sides, lease: str, side: str) -> None:
        """Back to before the pause: the alias (if it may have moved) and the phase."""
        row = self._row()  # type: ignore[attr-defined]
        if row.phase not in jr.PAUSED:
            return
        cut = row.cutover or {}
        if side == "source" and cut.get("switching") and cut.get("alias"):
            info = repoint(s, "source", None, {"how": "alias", "alias": cut["alias"]})
            log.warning("sync %s: %s", self.id, info["message"])
        if side == "source":
            self._commit(lease, phase="verified", cutover=None)  # type: ignore[attr-defined]
        else:
            self._commit(lease, phase="cut_over", cutover={k: v for k, v in cut.items() if k != "switching"})  # type: ignore[attr-defined]
        self.store.event(self.id, "sync switch undone", f"writes go to the {side} again")
        log.warning("sync %s: switch undone; writes go to the %s again", self.id, side)

    def _frozen_switch(self, s: Sides, lease: str, side: str, freeze: Any, alias: str | None,
                       max_passes: int) -> None:
        """No journal: inside the caller's write freeze, passes until one is clean (nothing
        changes under the freeze, so one clean pass after the last repair proves it), switch."""
        with freeze() if callable(freeze) else freeze:
            t0 = time.monotonic()
            self._converge(s, lease, side, 1, max_passes)  # type: ignore[attr-defined]
            self._pause(s, lease, side)
            self._switch_or_undo(s, lease, side, alias)
            freeze_s = time.monotonic() - t0
        self._commit(lease, freeze_s=freeze_s)  # type: ignore[attr-defined]
        log.warning("sync %s: writes were frozen for %.3f s", self.id, freeze_s)

    def _complete(self, lease: str) -> None:
        """Verification ``passed`` and state ``completed``, only while this runner holds the lease."""
        row = self._row()  # type: ignore[attr-defined]
        n = (row.last_pass or {}).get("records", 0)
        self.store.renew_lease(self.id, lease)  # LeaseHeld if it was taken over
        self.store.set_verification(self.id, "passed", dict(
            passed=True, how="sync passes + proof of the ids written since (final drain)", matched=n,
            source_records=n, missing_count=0, extra_count=0, mismatched_count=0,
            switch_checked=(row.cutover or {}).get("checked", 0), rejected=len(dead_letters(self.store, self.id))))
        if self.store.get(self.id).state == "in_progress":
            self.store.transition(self.id, "completed", "sync cut over after verification", lease=lease)
        prune(self.store, self.id, "source", row.applied_seq)  # all applied and proved


def repoint(sides: Sides, to: str, alias: str | None, cutover: dict[str, Any]) -> dict[str, Any]:
    """Send traffic to ``to`` ("target" at cutover, "source" at rollback): through an alias
    where the connector has ``set_alias``, else a record saying exactly what to repoint."""
    src, tgt = sides.source.uri, sides.target.uri
    if to == "target":
        if alias and hasattr(sides.target, "set_alias"):
            before = (cutover["alias_before"] if "alias_before" in cutover  # a switch resumed after a kill
                      else sides.target.get_alias(alias))  # type: ignore[attr-defined]
            sides.retry(sides.target.set_alias, alias)
            return {"how": "alias", "alias": alias, "alias_before": before, "at": time.time(),
                    "message": f"alias '{alias}' now points at the target {tgt} (was {before!r})"}
        why = f"the target has no aliases ('{alias}' not set); " if alias else ""
        return {"how": "recorded", "alias": alias, "at": time.time(),
                "message": f"{why}cutover recorded in the state store: repoint the application (reads, and "
                           f"writes not made through a JournalingWriter) from {src} to {tgt}"}
    if cutover.get("how") == "alias":
        alias, s, t = cutover["alias"], sides.source, sides.target
        if hasattr(s, "set_alias") and hasattr(s, "alias_scope") and s.alias_scope() == t.alias_scope():  # type: ignore[attr-defined]
            sides.retry(s.set_alias, alias)
            return {"how": "alias", "message": f"alias '{alias}' points at the source {src} again"}
        return {"how": "recorded", "message": f"alias '{alias}' still points at the target (the source is "
                f"in another instance): repoint the application back to {src}"}
    return {"how": "recorded", "message": f"rollback recorded: repoint the application (reads, and writes "
            f"not made through a JournalingWriter) back to {src}"}
