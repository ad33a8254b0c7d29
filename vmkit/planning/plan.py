"""plan(): everything a migration will do to the data, decided before the first write.

A Plan is plain data: it round-trips through JSON, is stored with its hash in the state store,
and ``map_batch(batch, plan)`` is a pure function of it. The planner reads the target's
Capabilities; it never branches on a connector's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.base import Capabilities, TargetSpec

if TYPE_CHECKING:
    pass

NESTED_POLICIES = ("json", "flatten", "drop")
NAMESPACE_POLICIES = ("auto", "keep", "field", "collections", "drop")


@dataclass
class PlanWarning:
    field: str
    message: str
    policy: str = ""
    severity: str = "warning"  # "warning" or "error"
    count: int = 0  # sampled records it touches
    examples: list[Any] = dataclasses.field(default_factory=list)  # example record ids

    def __str__(self) -> str:
        pol = f" -> {self.policy}" if self.policy else ""
        ex = f"; e.g. {', '.join(repr(e) for e in self.examples)}" if self.examples else ""
        return f"{self.severity}: {self.field}: {self.message}{pol}{ex}"


@dataclass
class Plan:
    source_uri: str
    target_uri: str
    target: TargetSpec
    caps: dict[str, Any]  # snapshot of the target's Capabilities the rules read
    batch_size: int = 1000
    namespace_policy: str = "keep"  # keep | field | collections | drop
    namespace_field: str = "namespace"
    namespace_collections: dict[str, str] = field(default_factory=dict)  # ns -> collection ("collections")
    nested_policy: str = "json"
    # How int ids travel to a target taking strings but not ints (see vmkit.core.ids): "decimal"
    # text, or "uuid5" when the source also holds string ids the decimals could collide with.
    uint_ids: str = "decimal"
    renames: dict[str, str] = field(default_factory=dict)
    # Source keys whose values are written as JSON text: the target types each key and the
    # sample saw values of several types under it (Capabilities.metadata_typed_keys).
    text_fields: list[str] = field(default_factory=list)
    drop_fields: list[str] = field(default_factory=list)
    create_target: bool = True
    source_count: int = 0
    source_namespaces: dict[str, int] = field(default_factory=dict)
    warnings: list[PlanWarning] = field(default_factory=list)
    estimates: dict[str, float] = field(default_factory=dict)
    # Parts of the source read independently (vmkit.connectors.partitions), when asked for.
    partitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        c = dict(self.caps)
        for key in ("id_kinds", "metrics", "reserved_fields"):
            c[key] = frozenset(c.get(key, ()))
        c["reserved_suffixes"] = tuple(c.get("reserved_suffixes", ()))
        return Capabilities(**c)

    @property
    def errors(self) -> list[PlanWarning]:
        return [w for w in self.warnings if w.severity == "error"]

    @property
    def estimated_batches(self) -> int:
        return math.ceil(self.source_count / self.batch_size) if self.source_count else 0

    @property
    def target_routes(self) -> dict[str, str] | None:
        """Namespace -> target collection when each namespace gets a collection, else None
        (what ``vmkit.connectors.open_target`` takes)."""
        return dict(self.namespace_collections) if self.namespace_policy == "collections" else None

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
        for volatile in ("warnings", "source_count", "source_namespaces", "create_target", "estimates"):
            d.pop(volatile)
        # Left out at their defaults, so plans stored before the fields existed keep their hash.
        if d["uint_ids"] == "decimal":
            d.pop("uint_ids")
        if not d["text_fields"]:
            del d["text_fields"]
        if not d["namespace_collections"]:
            del d["namespace_collections"]
        if not d["partitions"]:
            del d["partitions"]
        else:  # their bounds decide what each part reads; the estimates do not
            d["partitions"] = [{k: v for k, v in p.items() if k != "estimated"} for p in d["partitions"]]
        # The sample's field kinds shape the columns a target creates, not the values written;
        # a re-plan whose sample saw other keys is the same plan.
        del d["target"]["fields"]
        if not d["caps"].get("reserved_suffixes"):
            d["caps"].pop("reserved_suffixes", None)
        return hashlib.sha256(orjson.dumps(d, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def _repr_html_(self) -> str:
        from vmkit.planning.plan_html import plan_html

        return plan_html(self)

    def __str__(self) -> str:
        t = self.target
        lines = [
            f"plan {self.source_uri} -> {self.target_uri}",
            f"  target: {t.name} dim={t.dimension} metric={t.metric} sparse={t.sparse}",
            *(["  named vectors: " + ", ".join(f"{n or 'default'} ({d}, {m})" for n, (d, m) in t.vector_spaces().items())]
              if t.extra_vectors else []),
            f"  records: {self.source_count} in ~{self.estimated_batches} batches of {self.batch_size}",
        ]
        if self.estimates:
            e = self.estimates
            lines.append(f"  estimates: ~{e['bytes'] / 1e6:.1f} MB on the wire in ~{int(e['write_requests'])} "
                         "write requests")
        if any(self.source_namespaces):
            where = {"field": f"field '{self.namespace_field}'",
                     "collections": "one collection each"}.get(self.namespace_policy, self.namespace_policy)
            lines.append(f"  namespaces: {len(self.source_namespaces)} -> {where}")
        lines += [f"    namespace {ns!r} -> collection {name!r}" for ns, name in self.namespace_collections.items()]
        if self.partitions:
            from vmkit.connectors.partitions import Partition, describe

            lines += ["  " + line for line in describe([Partition.from_dict(p) for p in self.partitions])]
        if self.renames:
            lines.append("  renames: " + ", ".join(f"{a}->{b}" for a, b in sorted(self.renames.items())))
        lines += [f"  {w}" for w in self.warnings]
        return "\n".join(lines)
