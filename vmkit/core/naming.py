"""Field renames a target's naming rules require: deterministic, collision-free, reversible.

Driven by Capabilities (``field_name_pattern``, ``reserved_fields``, ``reserved_suffixes``), never
by a target's name. A key ending in a reserved suffix (compared case-insensitively) gets a '_'
appended (``price_temp`` -> ``price_temp_``), so the map stays deterministic and reversible.
Collisions are detected case-insensitively (``Name`` and ``name`` are one property in some
targets) and resolved by suffixes in sorted order of the original names, so two runs over the
same names always produce the same map.
"""

from __future__ import annotations

import re
from typing import Iterable

_INVALID = re.compile(r"[^_0-9A-Za-z]")


def has_reserved_suffix(name: str, suffixes: Iterable[str]) -> bool:
    folded = name.casefold()
    return any(folded.endswith(s.casefold()) for s in suffixes)


def sanitize(name: str, pattern: str | None, reserved: frozenset[str], suffixes: tuple[str, ...] = ()) -> str:
    """One name made acceptable, without regard to collisions."""
    if pattern is None and name not in reserved and not has_reserved_suffix(name, suffixes):
        return name
    if pattern is not None and not re.fullmatch(pattern, name):
        name = _INVALID.sub("_", name) or "_"
        if not re.fullmatch(pattern, name):
            name = "_" + name
    if has_reserved_suffix(name, suffixes):
        name = name + "_"
    if name in reserved:
        name = name + "_"
    return name


def plan_renames(names: Iterable[str], pattern: str | None, reserved: frozenset[str],
                 suffixes: tuple[str, ...] = ()) -> dict[str, str]:
    """original -> new name, for every name that must change (valid names keep theirs)."""
    if pattern is None and not reserved and not suffixes:
        return {}  # a target without naming rules takes every name as it is
    ordered = sorted(set(names))
    wanted = {n: sanitize(n, pattern, reserved, suffixes) for n in ordered}
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


def collection_names(namespaces: Iterable[str], base: str, template: str, forbidden: str,
                     max_length: int | None) -> dict[str, str]:
    """Source namespace -> target collection: the default namespace "" keeps ``base``, every
    other one is ``template`` filled in, with forbidden and control characters replaced by '_'.
    Clashes get suffixes in sorted order of the namespaces, so the map is deterministic."""

    def clean(name: str) -> str:
        name = "".join("_" if c in forbidden or ord(c) < 32 or ord(c) == 127 else c for c in name)
        return "_" + name if name in ("", ".", "..") else name

    def fit(name: str, suffix: str = "") -> str:
        if max_length is not None and len(name) + len(suffix) > max_length:
            name = name[: max_length - len(suffix)]
        return name + suffix

    ordered = sorted(set(namespaces))  # "" first: the default namespace keeps the base name
    raw = {ns: base if ns == "" else template.format(collection=base, namespace=ns) for ns in ordered}
    wanted = {ns: fit(clean(name)) for ns, name in raw.items()}
    out: dict[str, str] = {}
    for ns in ordered:  # names valid as they are keep themselves, first in sorted order wins
        if wanted[ns] == raw[ns] and raw[ns] not in out.values():
            out[ns] = raw[ns]
    taken = set(out.values())
    for ns in ordered:
        if ns in out:
            continue
        candidate, k = wanted[ns], 2
        while candidate in taken:
            candidate, k = fit(wanted[ns], f"_{k}"), k + 1
        taken.add(candidate)
        out[ns] = candidate
    return {ns: out[ns] for ns in ordered}
