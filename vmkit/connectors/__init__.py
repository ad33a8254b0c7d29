"""Connector registry: URI scheme -> connector class, built-ins first, then entry points in the
``vmkit.connectors`` group. ``connect(uri)`` is the only constructor users need."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.errors import ConfigError

# Built-ins by module path, so importing vmkit never imports a database SDK.
_BUILTIN: dict[str, str] = {
    "memory": "vmkit.connectors.memory:MemoryConnector",
    "qdrant": "vmkit.connectors.qdrant:QdrantConnector",
    "pinecone": "vmkit.connectors.pinecone:PineconeConnector",
    "weaviate": "vmkit.connectors.weaviate:WeaviateConnector",
    "sochdb": "vmkit.connectors.sochdb:SochDBConnector",
    "synthetic": "vmkit.connectors.synthetic:SyntheticConnector",
    "sink": "vmkit.connectors.sink:SinkConnector",
}


def _load(target: str) -> type[Connector]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def registry() -> dict[str, str]:
    """Scheme -> 'module:Class' for every known connector."""
    found = dict(_BUILTIN)
    for ep in entry_points(group="vmkit.connectors"):
        found[ep.name] = ep.value
    return found


def connector_class(scheme: str) -> type[Connector]:
    known = registry()
    if scheme not in known:
        raise ConfigError(f"unknown connector '{scheme}://' (known: {', '.join(sorted(known))})")
    try:
        return _load(known[scheme])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("vmkit"):
            raise ConfigError(f"connector '{scheme}://' is not available in this version") from None
        raise


def connect(uri: str) -> Connector:
    """Open the collection a URI names, e.g. ``qdrant:///data/q?collection=docs``.
    ``?namespaces=collections`` reads collection C and every ``C_NS`` as namespaces ("", NS)."""
    scheme, sep, _ = uri.partition("://")
    if not sep or not scheme:
        # The URI itself is not echoed: it may carry a credential by mistake.
        raise ConfigError("not a connector URI: expected scheme://... (e.g. qdrant:///dir?collection=c)")
    conn = connector_class(scheme)(uri)
    if conn.params.get("namespaces") == "collections":  # read sibling collections as namespaces
        from vmkit.connectors.routed import NamespaceCollections

        return NamespaceCollections(conn, None)
    return conn


__all__ = ["Capabilities", "CollectionInfo", "Connector", "TargetSpec", "connect", "registry"]
