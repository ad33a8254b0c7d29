"""What a target's rules will do to the records a schema describes: the plan's warnings.

Every finding names the field, how many sampled records it touches, example ids and the policy
chosen. Rules come from the target's Capabilities only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from vmkit.connectors.base import Capabilities
from vmkit.core.ids import ID_KIND_KEY, ORIGINAL_ID_KEY
from vmkit.core.records import RecordId, Rejection
from vmkit.planning.schema import Schema

EXAMPLES = 3


def example(rid: Any) -> Any:
    """A record id as a plan example. The plan is stored as JSON, and a source may hand over
    ids no JSON encoder takes (ints past 64 bits, odd types: the ones rejected), so those are
    kept as their repr."""
    try:
        orjson.dumps(rid)
    except orjson.JSONEncodeError:
        return repr(rid)
    return rid


def schema_findings(schema: Schema, caps: Capabilities, nested_policy: str,
                    renames: dict[str, str], uint_ids: str = "decimal") -> list[dict[str, Any]]:
    """Type-level findings from the field statistics (no records needed)."""
    out: list[dict[str, Any]] = []
    n = schema.sampled
    text_fields = mixed_type_keys(schema, caps)

    def add(field: str, message: str, policy: str, count: int, examples: list[RecordId],
            severity: str = "warning") -> None:
        out.append({"field": field, "message": f"{message} ({count} of {n} sampled)", "policy": policy,
                    "severity": severity, "count": count, "examples": [example(e) for e in examples[:EXAMPLES]]})

    for kind, count in sorted(schema.id_kinds.items()):
        if kind in caps.id_kinds or (kind == "uuid" and "string" in caps.id_kinds):
            continue
        message = f"target does not accept {kind} ids"
        policy = f"uuid5 of the id, original kept in '{ORIGINAL_ID_KEY}'"
        if kind == "uint" and "string" in caps.id_kinds and uint_ids == "decimal":
            policy = f"as string, kind kept in '{ID_KIND_KEY}'"
        elif kind == "uint" and "string" in caps.id_kinds:
            message += "; as decimal text they could collide with the source's string ids"
        add("id", message, policy, count, schema.id_examples.get(kind, []))
    if schema.duplicate_ids:
        add("id", "duplicate ids in the sample", "last write wins", schema.duplicate_ids, [])
    for name, stats in schema.fields.items():
        field = f"metadata.{name}"
        if name in renames:
            add(field, "name not allowed by the target", f"renamed to '{renames[name]}'", stats.present, [])
        types = stats.types
        if types.get("null") and not caps.metadata_null:
            add(field, "null values; the target stores no nulls", "key dropped", types["null"],
                stats.examples.get("null", []))
        if types.get("object") and not caps.metadata_nested:
            policy = {"json": "stored as a JSON string", "flatten": "flattened to dotted keys",
                      "drop": "records rejected"}[nested_policy]
            add(field, "nested objects; the target stores flat metadata", policy, types["object"],
                stats.examples.get("object", []))
        lists = {k: v for k, v in types.items() if k.startswith("list[") and k not in ("list[string]", "list[empty]")}
        mixed = {k: v for k, v in lists.items() if k in ("list[mixed]", "list[null]")}
        if lists and not caps.metadata_mixed_lists:
            add(field, f"lists of {', '.join(sorted(lists))}; the target takes lists of strings only",
                "stored as a JSON string", sum(lists.values()), sum((stats.examples[k] for k in lists), []))
        elif mixed and caps.metadata_uniform_lists:
            add(field, f"{', '.join(sorted(mixed))}; the target's lists hold one type",
                "stored as a JSON string", sum(mixed.values()), sum((stats.examples[k] for k in mixed), []))
        if stats.dates:
            policy = ("kept as objects; verification hashes their ISO-8601 text" if caps.metadata_objects
                      else "stored as ISO-8601 text")
            where = "the target keeps Python objects" if caps.metadata_objects else "the target stores JSON"
            add(field, f"dates or times; {where}", policy, stats.dates, stats.examples.get("dates", []))
        if name in text_fields:
            add(field, f"values of several types ({', '.join(text_fields[name])}); the target gives each "
                "key one type", "every value stored as JSON text (exact; compared decoded)",
                stats.present - stats.nulls, [])
        if types.get("bigint") and not caps.metadata_big_ints:
            add(field, "integers beyond 2^53; the target stores numbers as float64",
                "stored as a decimal string (exact)", types["bigint"], stats.examples.get("bigint", []))
    if schema.sparse and not caps.sparse:
        add("sparse", "sparse vectors; the target has none", "dropped; sparse-only records rejected",
            schema.sparse_records, [])
    return out


def mixed_type_keys(schema: Schema, caps: Capabilities) -> dict[str, list[str]]:
    """Keys whose values, once the target's other rules apply, would have several types, on a
    target that types each key -> those types. Nulls do not count."""
    if not caps.metadata_typed_keys:
        return {}

    def after_rules(kind: str) -> str:
        if kind == "bigint":
            return "int" if caps.metadata_big_ints else "string"
        if kind == "object" and not caps.metadata_nested:
            return "string"
        if kind in ("list[mixed]", "list[null]") and caps.metadata_uniform_lists:
            return "string"
        return kind

    out: dict[str, list[str]] = {}
    for name, stats in schema.fields.items():
        if not isinstance(name, str):  # not storable anywhere: rejected by the transform
            continue
        kinds = sorted({after_rules(k) for k in stats.types if k not in ("null", "list[empty]")})
        if stats.uneven and caps.metadata_uniform_lists and caps.metadata_nested:
            kinds.append("nested lists of several types")
        if len(kinds) > 1:
            out[name] = kinds
    return out


def rejection_findings(rejections: list[Rejection], sampled: int) -> list[dict[str, Any]]:
    """Group the rejections a sample would get, by field and reason (the text before ' (')."""
    groups: dict[tuple[str, str], list[RecordId]] = defaultdict(list)
    for r in rejections:
        groups[(r.field or "record", r.reason.split(" (")[0])].append(r.record_id)
    return [{"field": field, "message": f"{reason} ({len(ids)} of {sampled} sampled)",
             "policy": "rejected into the dead-letter table", "severity": "warning",
             "count": len(ids), "examples": [example(e) for e in ids[:EXAMPLES]]}
            for (field, reason), ids in sorted(groups.items())]


