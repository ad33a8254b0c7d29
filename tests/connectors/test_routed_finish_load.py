"""A target written one collection per namespace passes the end of the load on to every
collection (each may build its index then, as pgvector does)."""

from __future__ import annotations

from vmkit.connectors.memory import MemoryConnector
from vmkit.connectors.routed import NamespaceCollections


class Loaded(MemoryConnector):
    finished: list[str] = []

    def sibling(self, collection: str) -> "Loaded":
        return Loaded(f"memory://{collection}")

    def finish_load(self) -> None:
        Loaded.finished.append(self.name)


def test_finish_load_reaches_every_collection() -> None:
    routed = NamespaceCollections(Loaded("memory://docs"), {"": "docs", "a": "docs_a", "b": "docs_b"})
    routed.finish_load()
    assert sorted(Loaded.finished) == ["docs", "docs_a", "docs_b"]
