"""Field renames a target's naming rules require: deterministic, collision-free, reversible.

Driven by Capabilities (``field_name_pattern``, ``reserved_fields``), never by a target's name.
Collisions are detected case-insensitively (``Name`` and ``name`` are one property in some
targets) and resolved by suffixes in sorted order of the original names, so two runs over the
same names always produce the same map.
"""

from __future__ import annotations

import re
from typing import Iterable

_INVALID = re.compile(r"[^_0-9A-Za-z]")


def sanitize(name: str, pattern: str | None, reserved: frozenset[str]) -> str:
    """One name made acceptable, without regard to collisions."""
    if pattern is None and name not in reserved:
        return name
    if pattern is not None and not re.fullmatch(pattern, name):
        name = _INVALID.sub("_", name) or "_"
        if not re.fullmatch(pattern, name):
            name = "_" + name
    if name in reserved:
        name = name + "_"
    return name


def plan_renames(names: Iterable[str], pattern: str | None, reserved: frozenset[str]) -> dict[str, str]:
    """original -> new name, for every name that must change (valid names keep theirs)."""
    if pattern is None and not reserved:
        return {}  # a target without naming rules takes every name as it is
    ordered = sorted(set(names))
    wanted = {n: sanitize(n, pattern, reserved) for n in ordered}
    taken: set[str] = set()
    keepers: set[str] = set()
    for n in ordered:  # valid names keep themselves, first in sorted order wins a clash
        if wanted[n] == n and n.casefold() not in taken:
            taken.add(n.casefold())
            keepers.add(n)
    renames: dict[str, str] = {}
    for n in ordered:
        if n in keepers:
            continue
        candidate, k = wanted[n], 2
        while candidate.casefold() in taken:
            candidate, k = f"{wanted[n]}_{k}", k + 1
        taken.add(candidate.casefold())
        renames[n] = candidate
    return renames


def reverse(renames: dict[str, str]) -> dict[str, str]:
    return {new: old for old, new in renames.items()}
