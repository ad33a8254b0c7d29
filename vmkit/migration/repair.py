"""Repair: copy again what a full verification found wrong, then verify again.

Missing and mismatched records are read again from the source (one scan, mapped by the stored
plan, so they land exactly as the copy would have written them) and upserted. Records
dead-lettered as ``source_unreadable`` that the source now hands over are written and leave the
dead-letter table. Extra records are deleted only from a target vmkit created (every record in
it came from vmkit); in a target that existed before, they are reported and left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmkit.connectors.base import Connector
from vmkit.core.errors import IllegalTransition, StateError
from vmkit.core.records import SOURCE_UNREADABLE, RecordId, Rejection
from vmkit.migration.pipeline import BatchWriter
from vmkit.migration.verification import Verification
from vmkit.planning.plan import Plan
from vmkit.planning.transform import MappedBatch, map_batch

if TYPE_CHECKING:
    from vmkit.migration.runner import Migration

log = logging.getLogger("vmkit.migration.repair")
Key = tuple[str, RecordId]


@dataclass
class RepairOutcome:
    """What a repair did, and the verification that followed it."""

    copied: int = 0  # records written again (missing, mismatched, formerly unreadable)
    recovered: int = 0  # of those, records that had been dead-lettered as unreadable
    extra_deleted: int = 0
    extra_left: int = 0  # extra records in a target vmkit did not create
    rejected: list[Rejection] = field(default_factory=list)
    verification: Verification | None = None

    def __str__(self) -> str:
        after = "" if self.verification is None else f"\n{self.verification}"
        left = f", {self.extra_left} extra left in place (target not created by vmkit)" if self.extra_left else ""
        return (f"repair: {self.copied} records copied again ({self.recovered} formerly unreadable), "
                f"{self.extra_deleted} extra deleted{left}, {len(self.rejected)} refused{after}")


def repair(m: Migration, lease: str, source: Connector, target: Connector, plan: Plan) -> RepairOutcome:
    """Verify, copy again what is wrong, verify again. The caller holds the lease."""
    rec = m.store.get(m.id)
    if rec.state != "in_progress" or not rec.scan_done:
        raise IllegalTransition(m.id, rec.state if rec.state != "in_progress" else "in_progress (copy not finished)",
                                "repaired")
    found = m.verify(source, target, plan, lease=lease)
    outcome = RepairOutcome()
    wanted = set(found.missing) | {key for key, _ in found.mismatched}
    unreadable = _unreadable_keys(m)
    if wanted:
        _copy_again(m, lease, source, target, plan, wanted, unreadable, outcome)
    if found.extra:
        if rec.created_target:
            by_ns: dict[str, list[RecordId]] = {}
            for ns, rid in found.extra:
                by_ns.setdefault(ns, []).append(rid)
            for ns, ids in by_ns.items():
                for start in range(0, len(ids), 1000):
                    m._retry(target.delete, ids[start:start + 1000], ns)
            outcome.extra_deleted = len(found.extra)
        else:
            outcome.extra_left = len(found.extra)
            log.warning("migration %s: %d extra records left in place: the target was not created by "
                        "vmkit, so they may be someone else's", m.id, len(found.extra))
    m._retry(target.finish_load)  # as after the copy: what the repair wrote is settled too
    m.store.event(m.id, "repaired", f"{outcome.copied} copied, {outcome.recovered} recovered, "
                  f"{outcome.extra_deleted} extra deleted")
    outcome.verification = m.verify(source, target, plan, lease=lease)
    return outcome


def _unreadable_keys(m: Migration) -> set[Key]:
    rows = m.store.query("SELECT namespace, record_id, id_is_int FROM rejections"
                         " WHERE migration_id=? AND field=?", m.id, SOURCE_UNREADABLE)
    return {(ns, int(rid) if is_int else rid) for ns, rid, is_int in rows}


def _copy_again(m: Migration, lease: str, source: Connector, target: Connector, plan: Plan,
                wanted: set[Key], unreadable: set[Key], outcome: RepairOutcome) -> None:
    """One scan of the source; the records whose target key is ``wanted`` written again."""
    writer = BatchWriter(target, m._retry, workers=m.options.write_workers,
                         max_reason_run=m.options.max_reason_run)
    recovered: list[Key] = []
    cursor: str | None = None
    try:
        while True:
            batch, cursor = m._retry(source.scan, cursor, plan.batch_size)
            mapped = map_batch(batch, plan)
            out = mapped.batch
            rows = [i for i, tid in enumerate(out.ids) if (out.namespace, tid) in wanted]
            if rows:
                written, refused = writer.write(MappedBatch(
                    out.take(rows), [mapped.source_ids[i] for i in rows], [], {}, mapped.source_namespace))
                outcome.copied += len(written)
                outcome.rejected += refused
                done = set(written.ids)
                recovered += [(mapped.source_namespace, mapped.source_ids[i]) for i in rows
                              if out.ids[i] in done and (mapped.source_namespace, mapped.source_ids[i]) in unreadable]
            if cursor is None:
                break
    finally:
        writer.close()
    if outcome.rejected:
        raise StateError(f"migration '{m.id}': the target refused {len(outcome.rejected)} records while "
                         f"repairing, e.g. {outcome.rejected[0]}")
    outcome.recovered = len(recovered)
    if recovered:
        m.store.resolve_unreadable(m.id, recovered, lease)
