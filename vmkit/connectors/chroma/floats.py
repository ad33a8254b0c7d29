"""Float metadata Chroma does not keep exactly.

Chroma 1.5.9 writes a record's metadata to its log as JSON text and reads it back with
serde_json's default number parser (no ``float_roundtrip`` feature): the significand becomes an
f64 and is then multiplied or divided by a power of ten, two roundings, so a float whose
shortest text has 16-17 digits may come back one ulp off (632/7 = 90.28571428571429 is stored
as 90.28571428571428, as the ``float_value`` column of chroma.sqlite3 shows). The text is the
shortest for the float, so no neighbouring float gets the value through either: such values
cannot be stored exactly at all. ``chroma_stores`` predicts what Chroma keeps (the test
test_chroma_values.py checks the prediction against the engine).

So a value Chroma would change is written as Chroma keeps it (filters see about the right
number) AND as exact text under ``_vmkit_f64:KEY``; a read puts the exact value back and drops
that key, if the stored value is still within an ulp of it (else someone changed KEY since, and
both keys are handed over as they are).
"""

from __future__ import annotations

import json
import math
from typing import Any

EXACT_PREFIX = "_vmkit_f64:"


def chroma_stores(x: float) -> float:
    """What serde_json's default parser makes of ``x`` printed shortest (ryu prints the same
    digits as Python's repr): ``significand as f64`` then ``*=``/``/=`` ``10^|exp|``
    (serde_json de.rs ``f64_from_parts``)."""
    text = repr(abs(x))
    mant, _, exp = text.partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    exponent = int(exp or 0) - len(frac)
    sig = int(digits)
    if sig >= 2**64:  # serde takes another path for such significands; not emulated
        return math.nan
    f = float(sig)
    while True:
        if abs(exponent) <= 308:
            pow10 = float(f"1e{abs(exponent)}")  # the table serde_json holds: correctly rounded literals
            f = f * pow10 if exponent >= 0 else f / pow10
            break
        if f == 0.0 or exponent > 0:
            return math.nan if exponent > 0 else f
        f /= 1e308
        exponent += 308
    return -f if x < 0 else f



def _changed(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, float) and math.isfinite(v) and chroma_stores(v) != v for v in values)


def add_exact(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` plus the exact text of each value Chroma would change."""
    extra = {EXACT_PREFIX + k: json.dumps(v) for k, v in meta.items() if _changed(v)}
    return {**meta, **extra} if extra else meta


def restore_exact(meta: dict[str, Any]) -> dict[str, Any]:
    """Undo ``add_exact`` on metadata read back from Chroma."""
    for key in [k for k in meta if k.startswith(EXACT_PREFIX)]:
        base = key[len(EXACT_PREFIX):]
        try:
            exact = json.loads(meta[key])
        except (TypeError, ValueError):
            continue
        if base in meta and _within_an_ulp(exact, meta[base]):
            meta[base] = exact
            del meta[key]
    return meta


def _within_an_ulp(exact: Any, stored: Any) -> bool:
    if isinstance(exact, list) and isinstance(stored, list) and len(exact) == len(stored):
        return all(_within_an_ulp(a, b) for a, b in zip(exact, stored))
    return (isinstance(exact, float) and isinstance(stored, float)
            and abs(exact - stored) <= math.ulp(exact))
