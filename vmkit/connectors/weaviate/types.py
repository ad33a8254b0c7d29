"""Weaviate property types as pure functions: the dataType a metadata value maps to, the
property specs a batch needs (nested objects included), and values converted to and from
what the v4 client sends and returns (dates as RFC3339, uuids as strings, nulls dropped)."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_lib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

# A property spec: {"t": Weaviate dataType, "n": {nested name: spec}} ("n" for object types).
Spec = dict[str, Any]
_ANY_ARRAY = "?[]"  # an empty list: fits any array type


def value_type(v: Any) -> str | None:
    """The Weaviate dataType a Python value maps to (None for null)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "number"
    if isinstance(v, dt.datetime):
        return "date"
    if isinstance(v, uuid_lib.UUID):
        return "uuid"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple, np.ndarray)):
        spec = None
        for x in v:
            t = value_type(x)
            spec = merge_spec(spec, {"t": t} if t else None)
        return _ANY_ARRAY if spec is None else spec["t"] + "[]"
    return "text"  # str, and anything else is written as its text


def value_problem(v: Any) -> str | None:
    """Why Weaviate cannot store ``v`` (mixed or nested lists), or None."""
    if isinstance(v, dict):
        return next((p for p in map(value_problem, v.values()) if p), None)
    if isinstance(v, (list, tuple, np.ndarray)):
        found = [value_type(x) for x in v]
        if None in found:
            return "a list with nulls (Weaviate arrays cannot hold null)"
        types = {t for t in found if t is not None}
        if any(t.endswith("[]") for t in types):
            return "a list of lists (Weaviate has no nested arrays)"
        if len({"number" if t == "int" else t for t in types}) > 1:
            return f"a list mixing {sorted(types)} (Weaviate arrays hold one type)"
        return next((p for p in map(value_problem, v) if p), None)
    return None


def spec_of(v: Any) -> Spec | None:
    t = value_type(v)
    if t is None:
        return None
    if t == "object":
        return {"t": t, "n": infer_specs([v])}
    if t == "object[]":
        return {"t": t, "n": infer_specs([x for x in v if isinstance(x, dict)])}
    return {"t": t}


def merge_spec(a: Spec | None, b: Spec | None) -> Spec | None:
    """Widen two specs into one: int+number -> number; conflicting types keep the first (the
    server then rejects the odd values per object, naming them)."""
    if a is None or b is None:
        return a or b
    ta, tb = a["t"], b["t"]
    if ta == _ANY_ARRAY and tb.endswith("[]"):
        return b
    if tb == _ANY_ARRAY and ta.endswith("[]"):
        return a
    if {ta, tb} in ({"int", "number"}, {"int[]", "number[]"}):
        return {"t": "number[]" if ta.endswith("[]") else "number"}
    if ta == tb and "n" in a:
        names = sorted(set(a["n"]) | set(b["n"]))
        return {"t": ta, "n": {k: merge_spec(a["n"].get(k), b["n"].get(k)) for k in names}}
    return a


def infer_specs(metas: Iterable[Mapping[str, Any]]) -> dict[str, Spec]:
    """Property specs for the keys of many records (keys that are only null are left out)."""
    specs: dict[str, Spec | None] = {}
    for meta in metas:
        for k, v in meta.items():
            specs[k] = merge_spec(specs.get(k), spec_of(v))
    return {k: _final(s) for k, s in specs.items() if s is not None}


def _final(spec: Spec) -> Spec:
    out = {"t": "text[]" if spec["t"] == _ANY_ARRAY else spec["t"]}
    if "n" in spec:
        out["n"] = {k: _final(s) for k, s in spec["n"].items() if s is not None}
        if not out["n"]:  # objects need at least one nested property
            out["n"] = {"_empty": {"t": "text"}}
    return out


def to_weaviate(v: Any, data_type: str | None = None) -> Any:
    """A metadata value in the form the client serializes faithfully."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, dict):
        return {k: to_weaviate(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple, np.ndarray)):
        items = [to_weaviate(x) for x in v]
        if data_type == "number[]" or any(isinstance(x, float) for x in items):
            # ints and floats mixed: the client would pick int64[] from the first element
            return [float(x) if not isinstance(x, (bool, str)) and x is not None else x for x in items]
        return items
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v.isoformat()
    if data_type == "number" and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if not isinstance(v, (str, int, float, bool, dt.datetime, uuid_lib.UUID)):
        return str(v)
    return v


def rfc3339(d: dt.datetime) -> str:
    d = d.astimezone(dt.UTC) if d.tzinfo else d
    frac = f".{d.microsecond:06d}".rstrip("0") if d.microsecond else ""
    return d.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def from_weaviate(v: Any) -> Any:
    """A property value read through the client -> JSON-friendly metadata (nulls dropped)."""
    if isinstance(v, dict):
        return {k: from_weaviate(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [from_weaviate(x) for x in v]
    if isinstance(v, dt.datetime):
        return rfc3339(v)
    if isinstance(v, uuid_lib.UUID):
        return str(v)
    if hasattr(v, "latitude") and hasattr(v, "longitude"):
        return {"latitude": v.latitude, "longitude": v.longitude}
    if hasattr(v, "number") and hasattr(v, "valid"):  # phone number
        return {"input": v.number, "defaultCountry": v.default_country}
    return v
