"""Weaviate naming rules as pure functions, so the planner can compute (and store)
renames (property types: weaviate_types).

What the server does (entities/schema/validation.go, usecases/schema/property.go):

- collection names must match ``[A-Z][_0-9A-Za-z]*`` (the server and client upper-case the
  first letter) and are unique case-insensitively;
- property names must match ``[_A-Za-z][_0-9A-Za-z]*``; ``_additional``, ``_id`` and ``id`` are
  reserved; the server LOWER-cases the first letter (``Title`` is stored and returned as
  ``title``); names are unique case-insensitively (``userId`` and ``userid`` collide);
- the Python client refuses a property named ``vector`` (and ``id``) at any level;
- since 2026-05 a NEW property name may not end in ``_searchable``, ``_rangeable``, ``_temp``,
  ``__meta_count``, ``_propertyLength`` or ``_nullState`` (422, ``entities/schema/validation.go``):
  the server's own inverted-index buckets are named ``property_<name><suffix>``
  (``adapters/repos/db/helpers``: ``MetaCountProp``, ``PropLength``, ``PropNull``), so such a
  name could clash with another property's bucket. Properties created before keep their names.
  vmkit compares the endings case-insensitively (a rename too many is harmless, one too few stops
  a migration) and appends '_' (``price_temp`` -> ``price_temp_``).

A metadata key survives a round trip unchanged only if it matches ``STABLE_FIELD_PATTERN``, is
not reserved, and no other key equals it case-insensitively. ``plan_property_renames`` maps
every other key to a valid, unique name, deterministically and reversibly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

COLLECTION_NAME_RE = re.compile(r"[A-Z][_0-9A-Za-z]*")
PROPERTY_NAME_RE = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
# Keys Weaviate stores and returns unchanged (first letter not upper-case).
STABLE_FIELD_PATTERN = r"[_a-z][_0-9A-Za-z]*"
# Server-reserved (id, _id, _additional), client-refused (vector), and meta (kept free by design).
RESERVED_PROPERTIES = frozenset({"id", "_id", "_additional", "meta", "vector"})
RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
MAX_NAME = 200  # property names become on-disk bucket names; stay well under 255 bytes


def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _shorten(name: str, source: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def is_valid_collection_name(name: str) -> bool:
    return bool(COLLECTION_NAME_RE.fullmatch(name))


def collection_name(name: str) -> str:
    """A valid Weaviate collection name for any source name: PascalCase of its words.

    ``my-docs.v2`` -> ``MyDocsV2``, ``docs`` -> ``Docs``, ``2024_docs`` -> ``C2024Docs``.
    """
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    out = "".join(w[:1].upper() + w[1:] for w in words) or "Collection"
    if not out[0].isalpha():
        out = "C" + out
    return _shorten(out, name)


def reserved_suffix(name: str) -> str | None:
    """The reserved ending ``name`` has (case-insensitively), or None."""
    folded = name.casefold()
    return next((s for s in RESERVED_SUFFIXES if folded.endswith(s.casefold())), None)


def property_problem(name: str, reserved: frozenset[str] = RESERVED_PROPERTIES) -> str | None:
    """Why ``name`` cannot be stored unchanged as a top-level property, or None."""
    if not PROPERTY_NAME_RE.fullmatch(name):
        return "not a valid Weaviate property name (must match [_A-Za-z][_0-9A-Za-z]*)"
    if lower_first(name) in reserved:
        return f"'{lower_first(name)}' is a reserved property name"
    if suffix := reserved_suffix(name):
        return f"the ending '{suffix}' is reserved for new properties (Weaviate 2026-05)"
    if name[0].isupper():
        return f"Weaviate lower-cases the first letter (it would come back as '{lower_first(name)}')"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    return None


def sanitize_property(name: str, reserved: frozenset[str] = RESERVED_PROPERTIES) -> str:
    """A valid, stable name for ``name`` (collisions are resolved by plan_property_renames)."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    out = lower_first(out)
    if reserved_suffix(out):
        out += "_"
    if out in reserved:
        out += "_"
    return _shorten(out, name)


def find_collisions(names: Iterable[str]) -> list[list[str]]:
    """Groups of distinct names that Weaviate would treat as one property (case-insensitive)."""
    groups: dict[str, set[str]] = {}
    for n in names:
        groups.setdefault(n.lower(), set()).add(n)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def plan_property_renames(
    names: Iterable[str],
    previous: Mapping[str, str] | None = None,
    existing: Iterable[str] = (),
    reserved: frozenset[str] = RESERVED_PROPERTIES,
) -> dict[str, str]:
    """Original key -> stored name, for every key that cannot be stored unchanged.

    Deterministic (depends only on the arguments, not their order) and stable: decisions in
    ``previous`` are kept, ``existing`` target properties keep their names, then keys that are
    valid as-is keep theirs (in sorted order, so of ``userId``/``userid`` the first sorted
    wins), and every other key gets ``sanitize_property(key)`` with ``_2``, ``_3``... until it
    is unique case-insensitively. The result is injective, so ``invert_renames`` reverses it.
    """
    result = dict(previous or {})
    owner: dict[str, str] = {}  # lower-cased stored name -> the original key that holds it
    for stored in existing:
        owner.setdefault(stored.lower(), stored)
    for original, stored in result.items():
        owner[stored.lower()] = original
    pending: list[str] = []
    for n in sorted(set(names) - set(result)):
        if property_problem(n, reserved) is None and owner.get(n.lower(), n) == n:
            owner[n.lower()] = n
        else:
            pending.append(n)
    for n in pending:
        base = sanitize_property(n, reserved)
        cand, i = base, 2
        while cand.lower() in owner:
            cand, i = _shorten(f"{base}_{i}", f"{n}_{i}"), i + 1
        result[n] = cand
        owner[cand.lower()] = n
    return result


def invert_renames(renames: Mapping[str, str]) -> dict[str, str]:
    """Stored name -> original key. Raises ValueError if two keys share a stored name."""
    inverse: dict[str, str] = {}
    for original, stored in renames.items():
        if stored.lower() in {k.lower() for k in inverse}:
            raise ValueError(f"rename map is not reversible: '{stored}' is used twice")
        inverse[stored] = original
    return inverse


def rename_keys(metadata: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    return {renames.get(k, k): v for k, v in metadata.items()}


def restore_keys(metadata: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    return rename_keys(metadata, invert_renames(renames))


def nested_problems(value: Any, path: str = "") -> list[str]:
    """Paths of keys inside nested objects that Weaviate cannot store (names or collisions)."""
    found: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        for group in find_collisions(item):
            found.append(f"{path}{{{','.join(group)}}} (case-insensitive duplicates)")
        for k, v in item.items():
            where = f"{path}.{k}" if path else k
            if not PROPERTY_NAME_RE.fullmatch(k) or k == "vector":
                found.append(f"{where} (invalid nested property name)")
            found.extend(nested_problems(v, where))
    return sorted(set(found))
