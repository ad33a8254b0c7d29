"""dry_run(): push source records through the plan and the target's rules, writing nothing.

With ``sample=None`` the whole source is read, and the rejections it lists are exactly the ones
the real run will dead-letter for the plan's rules (a target can still refuse records for
reasons it does not declare; those the run finds and dead-letters by bisection).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vmkit.connectors import connect
from vmkit.core.records import RecordBatch, Rejection
from vmkit.planning.plan import Plan, PlanWarning
from vmkit.planning.transform import map_batch


@dataclass
class DryRun:
    checked: int = 0
    would_write: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    changes: Counter[str] = field(default_factory=Counter)  # policy -> values changed

    @property
    def balanced(self) -> bool:
        return self.checked == self.would_write + len(self.rejections)

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(r.reason.split(" (")[0] for r in self.rejections).most_common())

    def findings(self) -> list[PlanWarning]:
        from vmkit.planning.findings import rejection_findings

        return [PlanWarning(**f) for f in rejection_findings(self.rejections, self.checked)]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [{"namespace": r.namespace, "id": r.record_id, "field": r.field, "reason": r.reason}
             for r in self.rejections], columns=["namespace", "id", "field", "reason"])

    def lines(self, limit: int = 20) -> list[str]:
        out = [f"dry run: {self.checked} records checked, {self.would_write} would be written, "
               f"{len(self.rejections)} rejected"]
        out += [f"  {n:>7} rejected: {reason}" for reason, n in self.by_reason().items()]
        out += [f"  {n:>7} values changed: {policy}" for policy, n in self.changes.most_common()]
        out += [f"  {r}" for r in self.rejections[:limit]]
        if len(self.rejections) > limit:
            out.append(f"  ... and {len(self.rejections) - limit} more (to_pandas() lists all)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        head, *rest = self.lines()
        return f"<b>{html.escape(head)}</b><pre>{html.escape(chr(10).join(rest))}</pre>"


def check_batches(plan: Plan, batches: list[RecordBatch]) -> DryRun:
    result = DryRun()
    for batch in batches:
        mapped = map_batch(batch, plan)
        result.checked += mapped.read
        result.would_write += len(mapped.batch)
        result.rejections += mapped.rejected
        result.changes.update(mapped.changes)
    return result


def dry_run(plan: Plan, sample: int | None = 2000, seed: int = 0) -> DryRun:
    """Check ``sample`` records spread over the source (None: every record) against the plan."""
    with connect(plan.source_uri) as source:
        if sample is not None:
            return check_batches(plan, source.sample(sample, seed))
        result, cursor = DryRun(), None
        while True:
            batch, cursor = source.scan(cursor, plan.batch_size)
            part = check_batches(plan, [batch])
            result.checked += part.checked
            result.would_write += part.would_write
            result.rejections += part.rejections
            result.changes.update(part.changes)
            if cursor is None:
                return result
