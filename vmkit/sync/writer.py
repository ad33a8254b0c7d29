"""JournalingWriter: the application's writes during a sync, journaled in the state file
(vmkit.state.journal) so that the sync can apply them to the other side."""

from __future__ import annotations

import time
from typing import Any, Sequence

from vmkit.core.errors import InvalidData, StateError
from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import RecordBatch, RecordId
from vmkit.planning.plan import Plan
from vmkit.planning.transform import map_batch
from vmkit.state.journal import PAUSED, SOURCE_LEADS, Key, append, read_row
from vmkit.state.store import StateStore
from vmkit.sync.apply import apply_source, attach, last_seqs
from vmkit.sync.sides import open_sides


# -- the writer --------------------------------------------------------------------------------
class JournalingWriter:
    """The application's writes during a migration: ``upsert(batch)`` and ``delete(ids, ns)``,
    always in the SOURCE's shape (its ids and namespaces), before and after cutover.
    Thread-safe. ``with JournalingWriter(mid, state) as w:`` closes its connectors."""

    def __init__(self, migration_id: str, state: Any = None, *, pause_timeout_s: float = 120.0,
                 visibility_s: float = 30.0) -> None:
        self.store = state if isinstance(state, StateStore) else StateStore(state)
        self.id = migration_id
        if read_row(self.store, migration_id) is None:
            raise StateError(f"migration '{migration_id}' is not a sync (create it with vmkit.sync.Sync)")
        self.pause_timeout_s, self.visibility_s = pause_timeout_s, visibility_s
        self.mirror_failures = 0
        self._sides: Any = attach(open_sides(self.store, migration_id), self.store, migration_id)  # lazy connections

    def _phase(self) -> tuple[str, Any]:
        """The phase (waiting out a cutover/rollback switch) and the sides to write."""
        deadline = time.monotonic() + self.pause_timeout_s
        while (row := read_row(self.store, self.id)).phase in PAUSED:
            if time.monotonic() > deadline:
                raise StateError(f"migration '{self.id}': writes paused ({row.phase}) for over "
                                 f"{self.pause_timeout_s:.0f} s; run the cutover or rollback again")
            time.sleep(0.002)
        if self._sides.reverse is None and row.reverse_plan:
            self._sides.reverse = Plan.from_json(row.reverse_plan)
        return row.phase, self._sides

    def upsert(self, batch: RecordBatch) -> None:
        hashes: list[str | None] = [d.hex() for _, d in batch_digests(batch, **self._sides.source_opts())]
        self._write([(batch.namespace, rid) for rid in batch.ids], "upsert", hashes, batch)

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        self._write([(namespace, rid) for rid in ids], "delete", [None] * len(ids), None)

    def _write(self, keys: list[Key], op: str, hashes: list[str | None], batch: RecordBatch | None) -> None:
        if not keys:
            return
        phase, s = self._phase()
        if phase in SOURCE_LEADS or phase == "rolled_back_after_cutover":
            s.upsert(s.source, batch) if batch is not None else s.delete(s.source, keys)
            if phase == "rolled_back_after_cutover":
                return  # the sync is over and the source leads: nothing to journal
            with self.store.transaction() as db:
                seen = append(db, self.id, "source", keys, op, hashes)
            if seen not in SOURCE_LEADS:  # a cutover overtook this write: bring it along
                apply_source(s, self.store, self.id, last_seqs(self.store, self.id, keys), self.visibility_s)
                with self.store.transaction() as db:
                    append(db, self.id, "target", keys, "redo", [None] * len(keys))
            return
        if batch is not None:  # cut over: the target leads
            mapped = map_batch(batch, s.plan)
            if mapped.rejected:
                raise InvalidData("the target cannot take: " + "; ".join(map(str, mapped.rejected[:5])))
            s.upsert(s.target, mapped.batch)
        else:
            s.delete(s.target, [tk for k in keys if (tk := s.target_key(k)) is not None])
        with self.store.transaction() as db:
            seen = append(db, self.id, "target", keys, op, hashes)
        if seen != "cut_over":  # a rollback overtook this write: the source leads again
            s.to_source(keys)
            return
        try:
            s.mirror(mapped.batch) if batch is not None else s.delete(s.source, keys)
        except Exception as exc:  # noqa: BLE001 - the target (leader) has it; rollback replays it
            self.mirror_failures += 1
            self.store.record_error(self.id, None, "sync mirror", f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._sides.close()

    def __enter__(self) -> "JournalingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
