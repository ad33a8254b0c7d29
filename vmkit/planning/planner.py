"""plan(): decide everything a migration will do to the data before the first write: the
target spec, id policy, field map and namespace placement, from the target's Capabilities
(never its name), checked by a dry run over the profiled sample. The result is a Plan
(vmkit.planning.plan), plain data."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from vmkit.connectors.base import Capabilities, Connector, TargetSpec
from vmkit.core.errors import PlanError
from vmkit.core.ids import ints_collide_with_strings
from vmkit.core.naming import plan_renames
from vmkit.planning.plan import NAMESPACE_POLICIES, NESTED_POLICIES, Plan, PlanWarning

if TYPE_CHECKING:
    from vmkit.planning.schema import Schema

def plan(
    source: Connector,
    target: Connector,
    schema: Schema | None = None,
    *,
    batch_size: int = 1000,
    nested_policy: str = "json",
    namespace_policy: str = "auto",
    namespace_field: str = "namespace",
    namespace_collection: str = "{collection}_{namespace}",
    renames: dict[str, str] | None = None,
    drop_fields: list[str] | None = None,
    sample: int = 1000,
    partitions: int = 0,
) -> Plan:
    """Decide the target spec, id policy and field map for copying ``source`` into ``target``,
    and explain every change before anything is written. Without a ``schema`` a sample of
    ``sample`` records is profiled (0 skips it). ``namespace_policy="collections"`` puts each
    source namespace in a collection of its own, named by ``namespace_collection``."""
    from vmkit.planning.schema import infer_schema

    info = source.describe()
    if info is None:
        raise PlanError(f"source {source.uri} does not exist")
    caps = target.capabilities
    if nested_policy not in NESTED_POLICIES:
        raise PlanError(f"nested_policy must be one of {NESTED_POLICIES}, not {nested_policy!r}")
    if batch_size < 1:
        raise PlanError("batch_size must be at least 1")
    if schema is None and sample > 0 and info.count:
        schema = infer_schema(source, sample=sample)
    existing = target.describe()
    name = existing.name if existing else getattr(target, "collection", None) or getattr(target, "name", "")
    vector_name, extra_vectors, vector_warnings = _named_vectors(info, existing, caps)
    spec = TargetSpec(str(name), info.dimension, info.metric, info.sparse and caps.sparse,
                      vector_name, extra_vectors)
    warnings = _spec_warnings(info, existing, caps, batch_size) + vector_warnings
    warnings += [PlanWarning(f"vector.{n}", f"source vector '{n}' cannot be read: {why}", "not copied")
                 for n, why in sorted(getattr(info, "skipped_vectors", {}).items())]
    warnings += [PlanWarning(**f) for f in getattr(info, "findings", [])]
    if existing is not None:
        warnings += [PlanWarning(**f) for f in target.target_findings()]

    if namespace_policy not in NAMESPACE_POLICIES:
        raise PlanError(f"namespace_policy must be one of {NAMESPACE_POLICIES}, not {namespace_policy!r}")
    ns_policy = namespace_policy
    several = sum(1 for ns in info.namespaces if ns or info.namespaces[ns]) > 1
    if ns_policy == "auto":
        # Namespaces sharing one id space could overwrite each other's equal ids: the field
        # policy scopes each id by its namespace instead.
        ns_policy = "keep" if caps.namespaces and not (caps.namespace_ids_shared and several) else "field"
    if any(info.namespaces):
        if ns_policy == "field":
            why = ("target has no namespaces" if not caps.namespaces else
                   "the target's namespaces share one id space (equal ids would overwrite each other)"
                   if caps.namespace_ids_shared else "namespaces folded into metadata")
            warnings.append(PlanWarning("namespace", why,
                                        f"kept in field '{namespace_field}', part of the target id"))
        elif ns_policy == "keep" and not caps.namespaces:
            warnings.append(PlanWarning("namespace", "target has no namespaces: equal ids in two "
                                        "namespaces would overwrite each other", severity="error"))
        elif ns_policy == "keep" and caps.namespace_ids_shared and several:
            warnings.append(PlanWarning("namespace", "the target's namespaces share one id space: equal ids "
                                        "in two namespaces would overwrite each other",
                                        "kept as namespaces (full verification finds any overwrite)"))
        if ns_policy == "keep" and caps.namespaces:
            refused = {ns: target.namespace_problem(ns) for ns in sorted(info.namespaces)}
            warnings += [PlanWarning("namespace", f"the target cannot take namespace {ns!r}: {problem}",
                                     "rename it at the source, or --namespaces field", severity="error")
                         for ns, problem in refused.items() if problem]
        elif ns_policy == "drop":
            warnings.append(PlanWarning("namespace", "namespaces dropped: equal ids in two namespaces "
                                        "overwrite each other", "last write wins"))
    ns_map: dict[str, str] = {}
    create_target = existing is None
    if ns_policy == "collections":
        from vmkit.planning.ns_collections import collection_findings, collection_map

        ns_map = collection_map(info, str(name), namespace_collection, caps)
        found, create_target = collection_findings(ns_map, namespace_collection, target, info)
        warnings += [PlanWarning(**f) for f in found]

    # Ids an earlier migration mapped may be restored on the way: their original kinds count.
    kinds = {*schema.id_kinds, *schema.original_id_kinds} if schema else set()
    uint_ids = "uuid5" if ints_collide_with_strings(kinds, caps.id_kinds) else "decimal"
    names = list(schema.fields) if schema else []
    reserved = caps.reserved_fields
    if caps.vector_names_reserved and spec.extra_vectors:
        reserved = reserved | set(spec.vector_spaces())
    field_map = plan_renames(names, caps.field_name_pattern, frozenset(reserved), caps.reserved_suffixes)
    field_map.update(renames or {})
    if schema is not None:
        spec = dataclasses.replace(spec, fields=field_kinds(schema, field_map, drop_fields or []))
    text_fields: list[str] = []
    if schema is not None:
        from vmkit.planning.findings import mixed_type_keys

        text_fields = sorted(mixed_type_keys(schema, caps))
    the_plan = Plan(
        source_uri=source.uri, target_uri=target.uri, target=spec, caps=caps.to_dict(),
        batch_size=batch_size, namespace_policy=ns_policy, namespace_field=namespace_field,
        namespace_collections=ns_map,
        nested_policy=nested_policy, uint_ids=uint_ids, renames=field_map, text_fields=text_fields, drop_fields=list(drop_fields or []),
        create_target=create_target, source_count=info.count,
        source_namespaces=dict(info.namespaces), warnings=warnings,
    )
    if partitions > 0:
        the_plan.partitions, split_found = _partitions(source, partitions)
        the_plan.warnings += split_found
    if schema is not None:
        from vmkit.planning.findings import schema_findings

        found = schema_findings(schema, caps, nested_policy, field_map, uint_ids)
        the_plan.warnings += [PlanWarning(**f) for f in found]
        the_plan.estimates = _estimates(the_plan, schema, caps)
        if schema.sample_batches:
            from vmkit.planning.dryrun import check_batches

            the_plan.warnings += check_batches(the_plan, schema.sample_batches).findings()
    return the_plan


def _partitions(source: Connector, n: int) -> tuple[list[dict[str, Any]], list[PlanWarning]]:
    from vmkit.connectors.partitions import whole

    parts = source.partitions(n)
    if parts:
        return [p.to_dict() for p in parts], []
    info = source.describe()
    return [whole(info.count if info else 0).to_dict()], [PlanWarning(
        "partitions", f"{source.scheme}:// cannot be split into parts read at once", "read as one partition")]


def field_kinds(schema: Schema, renames: dict[str, str], dropped: list[str]) -> dict[str, str]:
    """Each sampled metadata key, as the target will name it, -> its FIELD_KINDS kind: the one
    scalar type its values have (ints with floats are floats; ints past 2**53 are "json", which
    keeps them exact), else "json"."""
    scalar = {"bool": "bool", "int": "int", "float": "float", "string": "str"}
    kinds: dict[str, str] = {}
    for name, stats in schema.fields.items():
        if name in dropped or not isinstance(name, str):  # other keys are rejected by the transform
            continue
        seen = {k for k in stats.types if k != "null"}
        if seen == {"int", "float"}:
            seen = {"float"}
        kind = scalar.get(seen.pop(), "json") if len(seen) == 1 else "json"
        kinds[renames.get(name, name)] = kind
    return kinds


def _spec_warnings(info: Any, existing: Any, caps: Capabilities, batch_size: int) -> list[PlanWarning]:
    warnings: list[PlanWarning] = []
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
    if batch_size > caps.max_batch_records:
        warnings.append(PlanWarning(
            "batch_size", f"{batch_size} is over the target's {caps.max_batch_records}-record limit",
            "each batch written in several requests"))
    if caps.normalizes_cosine and info.metric == "cosine":
        warnings.append(PlanWarning("vector", "target stores unit vectors under cosine", "compared after normalizing"))
    return warnings


def _named_vectors(info: Any, existing: Any, caps: Capabilities
                   ) -> tuple[str, dict[str, dict[str, Any]], list[PlanWarning]]:
    """Which of the source's extra named vectors the target gets (all, if it can hold them)."""
    extra: dict[str, dict[str, Any]] = dict(info.extra_vectors)
    if not extra:
        return "", {}, []
    if not caps.named_vectors:
        return "", {}, [PlanWarning(
            "vector", f"target stores one dense vector per record; named vectors {sorted(extra)} "
            f"are not copied", f"only '{info.vector_name}' is (pick another with vector=NAME on "
            "the source URI)")]
    warnings = [PlanWarning(f"vector.{n}", f"target metric '{v['metric']}' unsupported", severity="error")
                for n, v in sorted(extra.items()) if v["metric"] not in caps.metrics]
    if existing is not None:
        have = {existing.vector_name: {"dimension": existing.dimension, "metric": existing.metric},
                **existing.extra_vectors}
        for n, v in sorted(extra.items()):
            got = have.get(n)
            if got is None or int(got["dimension"]) != int(v["dimension"]) or got["metric"] != v["metric"]:
                warnings.append(PlanWarning(
                    f"vector.{n}", f"target has {got or 'no such vector'}, source {v}", severity="error"))
    return info.vector_name, extra, warnings


def _estimates(the_plan: Plan, schema: Schema, caps: Capabilities) -> dict[str, float]:
    from vmkit.connectors.batching import record_sizes

    sizes = [record_sizes(b, caps) for b in schema.sample_batches if len(b)]
    per_record = float(sum(s.sum() for s in sizes) / max(1, sum(len(s) for s in sizes))) if sizes else 0.0
    total_bytes = per_record * the_plan.source_count
    return {
        "batches": float(the_plan.estimated_batches),
        "bytes": round(total_bytes),
        "write_requests": float(max(the_plan.estimated_batches, math.ceil(total_bytes / caps.max_batch_bytes))),
    }
