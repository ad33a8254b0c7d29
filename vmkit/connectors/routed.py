"""Several collections of one database seen as one namespaced connector.

A plan with ``namespace_policy="collections"`` maps each source namespace to a target collection
of its own; ``open_target`` routes every call by namespace to that collection, so the runner,
sampled validation, full verification and resume treat the target exactly like a target with
namespaces: records are keyed (namespace, id) on both sides and nothing in the records
themselves (no payload field) says where they came from.

The way back is a URI option, ``?namespaces=collections`` (``connect`` applies it): collection
C is read as the default namespace and every collection ``C_NS`` as namespace NS, the names the
default template writes. A name the plan had to change (see its warnings) comes back changed.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Sequence

import orjson

from vmkit.connectors.base import CollectionInfo, Connector, TargetSpec
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch, RecordId


class NamespaceCollections(Connector):
    """Namespace ns lives in collection ``collections[ns]`` of ``base``'s database (None:
    discovered by name on first use, see the module docstring). Owns ``base`` (closes it).
    The scan walks namespaces in sorted order; its cursor is ``{"ns": NS, "c": the
    collection's own cursor}``."""

    scheme = "routed"

    def __init__(self, base: Connector, collections: dict[str, str] | None) -> None:
        super().__init__(base.uri)
        self.base = base
        self.collection = getattr(base, "collection", "")
        self.capabilities = replace(base.capabilities, namespaces=True)
        self._collections = None if collections is None else dict(sorted(collections.items()))
        self._discovered = collections is None
        self._parts: dict[str, Connector] = {}
        self._lock = threading.Lock()  # parts open lazily, from parallel writers too

    @property
    def collections(self) -> dict[str, str]:
        with self._lock:
            if self._collections is None:
                names = self.base.list_collections()
                prefix = f"{self.collection}_"
                found = {n[len(prefix):]: n for n in names if n.startswith(prefix) and n != prefix}
                if self.collection in names:
                    found[""] = self.collection
                self._collections = dict(sorted(found.items()))
            return self._collections

    def _part(self, ns: str) -> Connector:
        name = self.collections.get(ns)
        if name is None:
            how = ("?namespaces=collections reads existing collections; to write one collection per "
                   "namespace, plan with namespace_policy='collections'" if self._discovered
                   else "it appeared after planning: re-plan to include it")
            raise TerminalError(f"namespace {ns!r} has no collection ({how})")
        with self._lock:
            if name not in self._parts:
                self._parts[name] = self.base if name == self.collection else self.base.sibling(name)
            return self._parts[name]

    def describe(self) -> CollectionInfo | None:
        """None unless every collection exists (then ``create`` makes the missing ones)."""
        infos = [(ns, self._part(ns).describe()) for ns in self.collections]
        have = [(ns, i) for ns, i in infos if i is not None]
        if not infos or len(have) < len(infos):
            return None
        first = have[0][1]
        return CollectionInfo(self.collection, first.dimension, first.metric, sum(i.count for _, i in have),
                              {ns: i.count for ns, i in have if i.count}, all(i.sparse for _, i in have))

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        order = list(self.collections)
        state: dict[str, Any] = orjson.loads(cursor) if cursor else {"ns": order[0] if order else "", "c": None}
        ns: str = state["ns"]
        if order and ns not in order:
            raise TerminalError(f"namespace {ns!r} of the scan cursor has no collection any more")
        pos, inner = (order.index(ns) if order else 0), state["c"]
        while pos < len(order):
            ns = order[pos]
            batch, inner = self._part(ns).scan(inner, limit)
            batch.namespace = ns
            if inner is None:
                pos += 1
            nxt = None if pos >= len(order) else orjson.dumps({"ns": order[pos], "c": inner}).decode()
            if len(batch) or nxt is None:
                return batch, nxt
        return RecordBatch.empty(), None

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        batch = self._part(namespace).fetch(ids)
        batch.namespace = namespace
        return batch

    def upsert(self, batch: RecordBatch) -> None:
        self._part(batch.namespace).upsert(replace(batch, namespace=""))

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        self._part(namespace).delete(ids)

    def count(self) -> int:
        return sum(self._part(ns).count() for ns in self.collections)

    def create(self, spec: TargetSpec) -> None:
        """The collections that do not exist yet (safe to repeat after a partial create)."""
        for ns, name in self.collections.items():
            if self._part(ns).describe() is None:
                self._part(ns).create(replace(spec, name=name))

    def drop(self) -> None:
        for ns in self.collections:
            if self._part(ns).describe() is not None:
                self._part(ns).drop()

    def finish_load(self) -> None:
        for ns in self.collections:
            self._part(ns).finish_load()

    def close(self) -> None:
        with self._lock:
            for part in self._parts.values():
                if part is not self.base:
                    part.close()
            self._parts.clear()
        self.base.close()
