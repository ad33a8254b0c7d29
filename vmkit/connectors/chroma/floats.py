"""Float metadata Chroma does not keep exactly.

Chroma 1.5.9 writes a record's metadata to its log as JSON text and reads it back with
serde_json's default number parser (no ``float_roundtrip`` feature): the significand becomes an
f64 and is then multiplied or divided by a power of ten, two roundings, so a float whose
shortest text has 16-17 digits may come back one ulp off (632/7 = 90.28571428571429 is stored
as 90.28571428571428, as the ``float_value`` column of chroma.sqlite3 shows). The text is the
shortest for the float, so no neighbouring float gets the value through either: such values
cannot be stored exactly at all. ``chroma_stores`` predicts what Chroma keeps (the test
test_chroma_values.py checks the prediction against the engine), so writes can say so.
"""

from __future__ import annotations

import math


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

