"""Metadata values between Python and PostgreSQL columns, exact both ways.

jsonb keeps numbers as ``numeric``: ints of any size stay exact, but a float whose shortest
text has an exponent and no fraction (1e+20) would come back as the int 100000000000000000000.
So floats are written with a decimal point (``100000000000000000000.0``), which numeric keeps
(its display scale), and read back as floats. The same rule gives ``numeric`` columns: a
value written with a decimal point is a float, one without an int. NUL characters cannot be
stored in text or jsonb (PostgreSQL refuses ``\\u0000``): InvalidData naming the field.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from typing import Any

import orjson

from vmkit.connectors.pgvector.schema import Column
from vmkit.core.errors import InvalidData

INT64 = 2**63
_EXPONENT = re.compile(rb"\de")


def float_text(f: float) -> str:
    """The shortest text of ``f`` with a decimal point kept (see the module doc)."""
    text = repr(f)
    if "e" in text and f == int(f):
        return f"{int(f)}.0"
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, int):  # past 64 bits: orjson refuses them
        return orjson.Fragment(str(value).encode())
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def _fix_floats(value: Any) -> Any:
    """``value`` with the numbers orjson would get wrong for jsonb as JSON fragments."""
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < 2**64:
        return orjson.Fragment(str(value).encode())
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value} (JSON has none)")
        text = float_text(value)
        return orjson.Fragment(text.encode()) if text != repr(value) or "e" in text else value
    if isinstance(value, dict):
        return {k: _fix_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fix_floats(v) for v in value]
    return value


def json_text(value: Any, rid: Any, where: str) -> str:
    """``value`` as JSON text jsonb gives back unchanged; InvalidData naming record and field."""
    try:
        try:
            data = orjson.dumps(value, default=_json_default)
            if _EXPONENT.search(data):  # floats like 1e+20 (or text that looks so: harmless)
                data = orjson.dumps(_fix_floats(value), default=_json_default)
        except orjson.JSONEncodeError:
            data = orjson.dumps(_fix_floats(value), default=_json_default)
    except (orjson.JSONEncodeError, ValueError, TypeError) as exc:
        raise InvalidData(f"record {rid!r} [{where}]: not storable as jsonb: {exc}") from None
    if b"null" in data:  # orjson writes NaN and Inf as null
        _check_finite(value, rid, where)
    text = data.decode()
    if "\\u0000" in text:
        raise InvalidData(f"record {rid!r} [{where}]: a NUL character (\\u0000), which jsonb refuses")
    return text


def _check_finite(value: Any, rid: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidData(f"record {rid!r} [{where}]: non-finite number {value}, which jsonb refuses")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v, rid, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, rid, where)


def as_is(text: str) -> str:
    """The ``dumps`` of a JSON value already encoded (json_text)."""
    return text


def numeric_out(d: decimal.Decimal) -> int | float | str:
    """A numeric value: written without a decimal point -> int (exact, any size); with one ->
    float when that float reads back as the same number, else the decimal text (exact)."""
    if not d.is_finite():
        return float(d)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(d)
    f = float(d)
    return f if decimal.Decimal(float_text(f)) == d else str(d)


def read_value(col: Column, value: Any) -> Any:
    """A typed column's value as metadata (None: the key is absent)."""
    if value is None:
        return None
    if col.array:
        return [read_value(Column(col.name, col.typname), v) for v in value]
    if isinstance(value, decimal.Decimal):
        return numeric_out(value)
    if col.typname == "uuid":
        return str(value)
    if col.typname == "float4":
        return float(value)
    return value


def write_value(col: Column, value: Any, rid: Any) -> Any:
    """A metadata value for a typed column, or InvalidData naming record and field."""
    where = f"metadata.{col.name}"

    def refuse(why: str) -> InvalidData:
        return InvalidData(f"record {rid!r} [{where}]: {why} does not fit column {col.name!r} "
                           f"({col.typname}{'[]' if col.array else ''})")

    if value is None:
        return None
    t = col.typname
    if t in ("json", "jsonb") and not col.array:
        from psycopg.types.json import Json, Jsonb

        return (Jsonb if t == "jsonb" else Json)(json_text(value, rid, where), dumps=as_is)
    if col.array:
        if not isinstance(value, list):
            raise refuse(f"a {type(value).__name__}")
        return [write_value(Column(col.name, t), v, rid) for v in value]
    if t == "bool":
        if isinstance(value, bool):
            return value
    elif t in ("int2", "int4", "int8"):
        bound = {"int2": 2**15, "int4": 2**31, "int8": INT64}[t]
        if isinstance(value, int) and not isinstance(value, bool):
            if -bound <= value < bound:
                return value
            raise refuse(f"the integer {value}")
    elif t in ("float4", "float8"):
        if isinstance(value, float) and math.isfinite(value):
            return value
    elif t == "numeric":
        if isinstance(value, bool):
            raise refuse("a bool")
        if isinstance(value, int):
            return decimal.Decimal(value)
        if isinstance(value, float) and math.isfinite(value):
            return decimal.Decimal(float_text(value))
    elif t in ("text", "varchar", "bpchar", "name", "citext") or col.category == "E":
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidData(f"record {rid!r} [{where}]: a NUL character, which PostgreSQL text refuses")
            return value
    elif t == "uuid":
        if isinstance(value, str):
            return value
    elif t in ("date", "timestamp", "timestamptz", "time"):
        return _when(t, value, refuse)
    raise refuse(f"a {type(value).__name__}")


def _when(t: str, value: Any, refuse: Any) -> Any:
    kind = {"date": datetime.date, "time": datetime.time}.get(t, datetime.datetime)
    if isinstance(value, str):
        try:
            value = kind.fromisoformat(value)  # type: ignore[attr-defined]
        except ValueError:
            raise refuse("the text " + repr(value)[:40]) from None
    if kind is datetime.date and isinstance(value, datetime.datetime):
        raise refuse("a datetime")
    if isinstance(value, kind):
        return value
    raise refuse(f"a {type(value).__name__}")
