"""The engines of the cross-engine matrix: how each one names a fresh collection for a role
("src", "dst", ...) in one test, and which fixtures (emulators, servers) it needs.

Embedded engines live in a directory of the test's own (tmpfs when there is one: embedded
Qdrant commits SQLite once per point); the Pinecone and Weaviate emulators and the PostgreSQL
server are reached over the network, so a child process (the CLI in the kill tests) reaches
them too. Embedded engines (Qdrant local, SochDB, Milvus Lite) allow one process per
directory: a test closes its connectors before a child opens the same store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Engine:
    name: str
    uri: Callable[[Path, dict[str, Any], str], str]  # (directory, fixtures, role) -> URI
    fixtures: tuple[str, ...] = ()


ENGINES: dict[str, Engine] = {e.name: e for e in [
    Engine("qdrant", lambda d, f, role: f"qdrant://{d}/q-{role}?collection=c"),
    Engine("pinecone", lambda d, f, role: f"pinecone://matrix-{role}", ("pinecone_emu",)),
    Engine("weaviate", lambda d, f, role: f["weaviate_emu"].uri(f"Matrix{role.title()}"),
           ("weaviate_emu",)),
    Engine("sochdb", lambda d, f, role: f"sochdb://{d}/s-{role}?collection=c"),
    Engine("milvus", lambda d, f, role: f"milvus://{d}/m-{role}.db?collection=c"),
    Engine("chroma", lambda d, f, role: f"chroma://{d}/c-{role}?collection=matrix"),
    Engine("lancedb", lambda d, f, role: f"lancedb://{d}/l-{role}?table=c"),
    Engine("pgvector", lambda d, f, role: f["pg_server"].uri(f["pg_db"], f"matrix_{role}"),
           ("pg_server", "pg_db")),
    Engine("parquet", lambda d, f, role: f"parquet://{d}/p-{role}"),
]}


def uri_for(name: str, directory: Path, request: Any, role: str) -> str:
    """A fresh collection of engine ``name`` for ``role``, its fixtures started on demand."""
    engine = ENGINES[name]
    fixtures = {f: request.getfixturevalue(f) for f in engine.fixtures}
    return engine.uri(directory, fixtures, role)
