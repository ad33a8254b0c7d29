"""plan(): everything a migration will do to the data, decided before the first write.

A Plan is plain data: it round-trips through JSON, is stored with its hash in the state store,
and ``map_batch(batch, plan)`` is a pure function of it. The planner reads the target's
Capabilities; it never branches on a connector's name.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from vmkit.connectors.base import Capabilities, Connector, TargetSpec
from vmkit.errors import PlanError

NESTED_POLICIES = ("json", "flatten", "drop")


@dataclass
class PlanWarning:
    field: str
    message: str
    policy: str = ""
    severity: str = "warning"  # "warning" or "error"

    def __str__(self) -> str:
        pol = f" -> {self.policy}" if self.policy else ""
        return f"{self.severity}: {self.field}: {self.message}{pol}"


@dataclass
class Plan:
    source_uri: str
    target_uri: str
    target: TargetSpec
    caps: dict[str, Any]  # snapshot of the target's Capabilities the rules read
    batch_size: int = 1000
    namespace_policy: str = "keep"  # keep | field | drop
    namespace_field: str = "namespace"
    nested_policy: str = "json"
    renames: dict[str, str] = field(default_factory=dict)
    drop_fields: list[str] = field(default_factory=list)
    create_target: bool = True
    source_count: int = 0
    warnings: list[PlanWarning] = field(default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        c = dict(self.caps)
        for key in ("id_kinds", "metrics", "reserved_fields"):
            c[key] = frozenset(c.get(key, ()))
        return Capabilities(**c)

    @property
    def errors(self) -> list[PlanWarning]:
        return [w for w in self.warnings if w.severity == "error"]

    @property
    def estimated_batches(self) -> int:
        return math.ceil(self.source_count / self.batch_size) if self.source_count else 0

    def to_json(self) -> str:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = orjson.loads(text)
        d["target"] = TargetSpec(**d["target"])
        d["warnings"] = [PlanWarning(**w) for w in d.get("warnings", [])]
        return cls(**d)

    @property
    def hash(self) -> str:
        """Hash of what changes the data (warnings and counts excluded)."""
        d = asdict(self)
        for volatile in ("warnings", "source_count", "create_target"):
            d.pop(volatile)
        return hashlib.sha256(orjson.dumps(d, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def __str__(self) -> str:
        t = self.target
        lines = [
            f"plan {self.source_uri} -> {self.target_uri}",
            f"  target: {t.name} dim={t.dimension} metric={t.metric} sparse={t.sparse}",
            f"  records: {self.source_count} in ~{self.estimated_batches} batches of {self.batch_size}",
            f"  namespaces: {self.namespace_policy}"
            + (f" (field '{self.namespace_field}')" if self.namespace_policy == "field" else ""),
        ]
        if self.renames:
            lines.append("  renames: " + ", ".join(f"{a}->{b}" for a, b in sorted(self.renames.items())))
        lines += [f"  {w}" for w in self.warnings]
        return "\n".join(lines)


def plan(
    source: Connector,
    target: Connector,
    schema: Any = None,
    *,
    batch_size: int = 1000,
    nested_policy: str = "json",
    namespace_policy: str = "auto",
    namespace_field: str = "namespace",
    renames: dict[str, str] | None = None,
    drop_fields: list[str] | None = None,
) -> Plan:
    """Decide the target spec, id policy and field map for copying ``source`` into ``target``."""
    info = source.describe()
    if info is None:
        raise PlanError(f"source {source.uri} does not exist")
    caps = target.capabilities
    if nested_policy not in NESTED_POLICIES:
        raise PlanError(f"nested_policy must be one of {NESTED_POLICIES}, not {nested_policy!r}")
    if batch_size < 1:
        raise PlanError("batch_size must be at least 1")
    warnings: list[PlanWarning] = []
    existing = target.describe()
    name = existing.name if existing else getattr(target, "collection", None) or getattr(target, "name", "")
    spec = TargetSpec(str(name), info.dimension, info.metric, info.sparse and caps.sparse)

    if info.metric not in caps.metrics:
        warnings.append(PlanWarning("metric", f"target does not support '{info.metric}'", severity="error"))
    if existing is not None:
        if existing.dimension != info.dimension:
            warnings.append(PlanWarning(
                "vector", f"target has dimension {existing.dimension}, source {info.dimension}",
                severity="error"))
        if existing.metric != info.metric:
            warnings.append(PlanWarning(
                "metric", f"target uses '{existing.metric}', source '{info.metric}'",
                "rankings may differ", severity="error"))
    if info.sparse and not caps.sparse:
        warnings.append(PlanWarning("sparse", "target has no sparse vectors", "dropped; sparse-only records rejected"))
    if batch_size > caps.max_batch_records:
        warnings.append(PlanWarning("batch_size", f"{batch_size} is over the target's {caps.max_batch_records}-record limit", "writes split"))
    if caps.normalizes_cosine and info.metric == "cosine":
        warnings.append(PlanWarning("vector", "target stores unit vectors under cosine", "compared after normalizing"))

    ns_policy = namespace_policy
    if ns_policy == "auto":
        ns_policy = "keep" if caps.namespaces else "field"
    if ns_policy == "field" and any(info.namespaces):
        warnings.append(PlanWarning("namespace", "target has no namespaces", f"kept in metadata field '{namespace_field}'"))

    return Plan(
        source_uri=source.uri,
        target_uri=target.uri,
        target=spec,
        caps=caps.to_dict(),
        batch_size=batch_size,
        namespace_policy=ns_policy,
        namespace_field=namespace_field,
        nested_policy=nested_policy,
        renames=dict(renames or {}),
        drop_fields=list(drop_fields or []),
        create_target=existing is None,
        source_count=info.count,
        warnings=warnings,
    )
