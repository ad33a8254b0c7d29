"""Metadata rules of map_batch: how each metadata value becomes one the target can hold.

Flattening or JSON-encoding nested objects and lists the target cannot store, dropping nulls,
renames and dropped fields from the plan, field names the target forbids, integers past 2**53
as text, dates as ISO-8601 text on JSON targets, and NaN/Inf refused. A record a rule cannot
carry raises ``Reject`` naming the field; ``changes`` counts what each rule did.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import orjson

from vmkit.connectors.base import Capabilities
from vmkit.core.naming import has_reserved_suffix
from vmkit.core.records import Metadata
from vmkit.planning.plan import Plan

_FLOAT_EXACT = 2**53
_DATES = (datetime.date, datetime.time)  # datetime.datetime is a date


class Reject(Exception):
    """One record cannot be written as it is: why, and which field (e.g. ``metadata.a.b``)."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


def values_need_walk(metadata: list[Metadata], caps: Capabilities) -> bool:
    """Whether any value may be NaN/Inf or (for a JSON target) a date or time. One orjson pass
    over the batch screens for both: NaN/Inf print as null, and dates raise with PASSTHROUGH."""
    option = 0 if caps.metadata_objects else orjson.OPT_PASSTHROUGH_DATETIME
    try:
        return b"null" in orjson.dumps(metadata, option=option)
    except TypeError:  # orjson.JSONEncodeError; unencodable values are rejected later
        return True


def json_values(value: Any, path: str, dates: bool, changes: dict[str, int]) -> Any:
    """``value`` with dates and times as ISO-8601 text (when ``dates``), at any depth: what
    is written is then what verification hashes. NaN/Inf are rejected: JSON cannot carry
    them and canonical hashing would see them as null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Reject(f"non-finite metadata number ({value}; JSON has no NaN or Inf)", path)
        return value
    if dates and isinstance(value, _DATES):
        changes["date -> ISO-8601 text"] = changes.get("date -> ISO-8601 text", 0) + 1
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_values(v, f"{path}.{k}", dates, changes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [json_values(v, f"{path}[{j}]", dates, changes) for j, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def metadata_passthrough(plan: Plan, caps: Capabilities) -> bool:
    """True when no rule can change any metadata: copy dicts as they are (the hot path)."""
    return (caps.metadata_nested and caps.metadata_null and caps.metadata_mixed_lists
            and caps.metadata_big_ints and caps.field_name_pattern is None and not caps.reserved_fields
            and not caps.reserved_suffixes
            and not plan.renames and not plan.drop_fields and not plan.text_fields)


def map_metadata(meta: Metadata, plan: Plan, caps: Capabilities, changes: dict[str, int]) -> Metadata:
    out: Metadata = {}
    text_fields = plan.text_fields
    for key, value in _flatten_if_needed(meta, plan, caps).items():
        if key in plan.drop_fields:
            continue
        as_text = key in text_fields and value is not None
        key = plan.renames.get(key, key)
        if caps.field_name_pattern and not re.fullmatch(caps.field_name_pattern, key):
            raise Reject(f"field name not allowed by the target ({key!r}, no rename planned)", f"metadata.{key}")
        if key in caps.reserved_fields:
            raise Reject(f"field name reserved by the target ({key!r}, no rename planned)", f"metadata.{key}")
        if has_reserved_suffix(key, caps.reserved_suffixes):
            raise Reject(f"field name ends in an ending the target reserves ({key!r}, no rename planned: "
                         "the plan's sample did not see it; re-plan with a larger sample)", f"metadata.{key}")
        if value is None and not caps.metadata_null:
            changes["null dropped"] = changes.get("null dropped", 0) + 1
            continue
        out[key] = _as_json_text(key, value, changes) if as_text else _map_value(key, value, plan, caps, changes)
    return out


def _as_json_text(key: str, value: Any, changes: dict[str, int]) -> str:
    """A value of a key the plan stores as text (its values mix types on a typed target)."""
    changes["mixed types -> json"] = changes.get("mixed types -> json", 0) + 1
    value = json_values(value, f"metadata.{key}", True, changes)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:  # orjson.JSONEncodeError: ints past 64 bits
        raise Reject(f"value not storable as JSON text ({exc})", f"metadata.{key}") from None


def _flatten_if_needed(meta: Metadata, plan: Plan, caps: Capabilities) -> Metadata:
    if plan.nested_policy != "flatten" or caps.metadata_nested:
        return meta
    flat: Metadata = {}

    def walk(prefix: str, obj: Any) -> None:
        for k, v in obj.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                walk(name, v)
            elif name in flat:
                raise Reject(f"flattened key collides with an existing key ({name!r})", f"metadata.{name}")
            else:
                flat[name] = v

    walk("", meta)
    return flat


def _map_value(key: str, value: Any, plan: Plan, caps: Capabilities, changes: dict[str, int]) -> Any:
    if isinstance(value, dict) and not caps.metadata_nested:
        if plan.nested_policy == "drop":
            raise Reject("nested object and nested_policy=drop would lose it", f"metadata.{key}")
        changes["nested -> json"] = changes.get("nested -> json", 0) + 1
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, list):
        only_strings = all(isinstance(v, str) for v in value)
        nested = any(isinstance(v, (dict, list)) for v in value)
        mixed = len({type(v) for v in value}) > 1 or any(v is None or isinstance(v, list) for v in value)
        if ((not only_strings and not caps.metadata_mixed_lists) or (nested and not caps.metadata_nested)
                or (mixed and caps.metadata_uniform_lists)):
            changes["list -> json"] = changes.get("list -> json", 0) + 1
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        value = list(value)
    if not caps.metadata_big_ints:
        return _big_ints_to_str(value, changes)
    return value


def _big_ints_to_str(value: Any, changes: dict[str, int]) -> Any:
    """Integers past 2**53 as decimal strings, at any depth (a float64 store would round them)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_EXACT:
        changes["big int -> string"] = changes.get("big int -> string", 0) + 1
        return str(value)
    if isinstance(value, list):
        return [_big_ints_to_str(v, changes) for v in value]
    if isinstance(value, dict):
        return {k: _big_ints_to_str(v, changes) for k, v in value.items()}
    return value
