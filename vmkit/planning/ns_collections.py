"""Planning namespaces as collections: each source namespace goes to a target collection of its
own (``namespace_policy="collections"``), named by a template.

The default namespace "" keeps the target URI's collection; every other namespace gets
``template`` filled in (default ``{collection}_{namespace}``), made to fit the target's naming
rules (vmkit.core.naming.collection_names). The map is stored in the plan, so it is part of the plan
hash, and the runner routes records by it (vmkit.connectors.routed).
"""

from __future__ import annotations

from typing import Any

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector
from vmkit.core.errors import PlanError
from vmkit.core.naming import collection_names

DEFAULT_TEMPLATE = "{collection}_{namespace}"


def collection_map(info: CollectionInfo, base: str, template: str, caps: Capabilities) -> dict[str, str]:
    """Source namespace -> target collection, for every namespace the source has now."""
    try:
        probe = template.format(collection=base, namespace="\x00")
    except (KeyError, IndexError, ValueError) as exc:
        raise PlanError(f"namespace_collection template {template!r} is not valid: use the "
                        "placeholders {collection} and {namespace}") from exc
    if "\x00" not in probe:
        raise PlanError(f"namespace_collection template {template!r} must contain {{namespace}}")
    spaces = set(info.namespaces) or {""}  # a source without namespaces has the default one
    return collection_names(spaces, base, template, caps.collection_name_forbidden, caps.max_collection_name)


def collection_findings(mapping: dict[str, str], template: str, target: Connector,
                        info: CollectionInfo) -> tuple[list[dict[str, Any]], bool]:
    """Plan warnings for the map (renamed collections, existing ones that do not fit), and
    whether vmkit creates all of the collections (none exists yet)."""
    out: list[dict[str, Any]] = []
    if not target.capabilities.collections:
        out.append({"field": "namespace", "severity": "error",
                    "message": "the target cannot hold namespaces in collections of their own"})
        return out, True
    base = getattr(target, "collection", "")
    changed = {ns: name for ns, name in mapping.items()
               if ns and name != template.format(collection=base, namespace=ns)}
    if changed:
        out.append({"field": "namespace", "message": f"{len(changed)} collection names changed to fit "
                    "the target's naming rules", "policy": ", ".join(
                        f"{ns!r} -> {name!r}" for ns, name in list(changed.items())[:5]),
                    "count": len(changed)})
    found = _existing(mapping, target)
    if found and len(found) < len(mapping):
        out.append({"field": "namespace", "severity": "error", "message": (
            f"{len(found)} of the {len(mapping)} namespace collections exist already "
            f"({', '.join(sorted(found)[:5])}): drop them or choose another namespace_collection template")})
    for name, got in sorted(found.items()):
        if (got.dimension, got.metric) != (info.dimension, info.metric):
            out.append({"field": "vector", "severity": "error", "message": (
                f"collection {name!r} has dimension {got.dimension} and metric '{got.metric}', "
                f"the source {info.dimension} and '{info.metric}'")})
    return out, not found


def _existing(mapping: dict[str, str], target: Connector) -> dict[str, CollectionInfo]:
    found: dict[str, CollectionInfo] = {}
    for name in sorted(set(mapping.values())):
        conn = target.sibling(name)
        try:
            if (got := conn.describe()) is not None:
                found[name] = got
        finally:
            conn.close()
    return found
