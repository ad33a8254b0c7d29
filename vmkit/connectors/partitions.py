"""Partitions of a source: parts that can be read independently, each resumed by a cursor of its
own (``Connector.scan_partition``), so several processes can copy one collection at once.

A Partition is plain JSON data stored in the plan (its hash covers them): a stable ``key``, the
``namespace`` it lies in, and bounds whose meaning belongs to the connector that made them
(an id range ``[lower, upper)``, an id prefix, a tenant). ``WHOLE`` is the one partition of a
source that cannot be split: it is read with ``scan``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

WHOLE = "all"


@dataclass(frozen=True)
class Partition:
    key: str  # unique within the plan, stable across runs
    namespace: str = ""
    lower: Any = None  # inclusive, JSON data (None: from the start)
    upper: Any = None  # exclusive, JSON data (None: to the end)
    estimated: int = 0  # records, from the source's counts or a sample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Partition":
        return cls(**d)

    def holds(self, value: Any) -> bool:
        """Whether a key falls inside ``[lower, upper)`` (None bounds are open)."""
        return (self.lower is None or value >= self.lower) and (self.upper is None or value < self.upper)


def whole(count: int) -> Partition:
    return Partition(WHOLE, estimated=count)


def int_ranges(n_records: int, parts: int, namespace: str = "", lo: int = 0) -> list[Partition]:
    """``parts`` equal ranges of the ids ``lo .. lo + n_records - 1`` (the last one open-ended)."""
    parts = max(1, min(parts, n_records or 1))
    step = -(-max(n_records, 1) // parts)
    out = []
    for i in range(parts):
        lower = lo + i * step
        upper = None if i == parts - 1 else lo + (i + 1) * step
        est = (min(n_records, (i + 1) * step) - i * step) if n_records else 0
        out.append(Partition(f"{namespace}/{i:04d}" if namespace else f"{i:04d}", namespace,
                             None if i == 0 else lower, upper, max(0, est)))
    return out


def sampled_ranges(keys: Sequence[Any], parts: int, total: int, namespace: str = "") -> list[Partition]:
    """Ranges split at quantiles of a sorted sample of ids (all of one comparable kind): the
    first open below, the last open above, so together they cover every id, sampled or not."""
    uniq = sorted(set(keys))
    parts = max(1, min(parts, len(uniq)))
    cuts = [uniq[(i * len(uniq)) // parts] for i in range(1, parts)]
    cuts = sorted(set(cuts))
    bounds: list[Any] = [None, *cuts, None]
    n = len(bounds) - 1
    return [Partition(f"{namespace}/{i:04d}" if namespace else f"{i:04d}", namespace,
                      bounds[i], bounds[i + 1], total // n) for i in range(n)]


def describe(parts: Sequence[Partition], limit: int = 8) -> list[str]:
    """Lines for a plan: how many, the records each is estimated to hold, the first ``limit``."""
    est = [p.estimated for p in parts]
    if not est:
        return ["partitions: none"]
    lines = [f"partitions: {len(parts)} (~{min(est)}..{max(est)} records each)"]
    for p in parts[:limit]:
        where = f"namespace {p.namespace!r} " if p.namespace else ""
        lines.append(f"  {p.key}: {where}[{p.lower!r}, {p.upper!r}) ~{p.estimated}")
    if len(parts) > limit:
        lines.append(f"  ... {len(parts) - limit} more")
    return lines
