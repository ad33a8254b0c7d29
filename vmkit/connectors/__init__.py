"""connectors: every database vmkit reads or writes, behind one contract (``base``: Connector,
Capabilities as data). One package per database (``pinecone/``, ``qdrant/``, ``weaviate/``,
``sochdb/``, ``pgvector/``), each importing its SDK lazily; beside them the shared pieces (request sizing,
reads ahead, routing namespaces to collections) and the test and benchmark stores (memory,
synthetic, sink). May import: ``vmkit.state`` and ``vmkit.core``; never the planner (what a
connector needs from a plan is handed in as data), and one database never another.

This module is the registry: URI scheme -> connector class, built-ins first, then entry points
in the ``vmkit.connectors`` group. ``connect(uri)`` is the only constructor users need."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.core.errors import ConfigError

# Built-ins by module path, so importing vmkit never imports a database SDK.
_BUILTIN: dict[str, str] = {
    "memory": "vmkit.connectors.memory:MemoryConnector",
    "qdrant": "vmkit.connectors.qdrant.connector:QdrantConnector",
    "pinecone": "vmkit.connectors.pinecone.connector:PineconeConnector",
    "weaviate": "vmkit.connectors.weaviate.connector:WeaviateConnector",
    "sochdb": "vmkit.connectors.sochdb.connector:SochDBConnector",
    "chroma": "vmkit.connectors.chroma.connector:ChromaConnector",
    "lancedb": "vmkit.connectors.lancedb.connector:LanceDBConnector",
    "postgresql": "vmkit.connectors.pgvector.connector:PgvectorConnector",
    "postgres": "vmkit.connectors.pgvector.connector:PostgresConnector",
    "milvus": "vmkit.connectors.milvus.connector:MilvusConnector",
    "synthetic": "vmkit.connectors.synthetic:SyntheticConnector",
    "parquet": "vmkit.connectors.parquet.connector:ParquetConnector",
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


def open_target(uri: str, routes: dict[str, str] | None = None) -> Connector:
    """A migration's target: with ``routes`` (source namespace -> collection, a plan's
    ``namespace_collections`` under ``namespace_policy="collections"``) every call goes to the
    namespace's own collection (vmkit.connectors.routed)."""
    conn = connect(uri)
    if routes is None:
        return conn
    from vmkit.connectors.routed import NamespaceCollections

    return NamespaceCollections(conn, routes)


__all__ = ["Capabilities", "CollectionInfo", "Connector", "TargetSpec", "connect", "open_target", "registry"]
