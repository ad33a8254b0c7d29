"""Qdrant connector on qdrant-client: embedded local directory, in-memory, or a server.

URIs::

    qdrant:///abs/dir?collection=NAME        embedded engine, data in a directory
    qdrant:///:memory:?collection=NAME       embedded, in this process only
    qdrant://host:6333/NAME[?https=true]     server; API key from QDRANT_API_KEY
                                             (or the variable named by api_key_env=)

Options: ``vector=NAME`` reads/writes only the named dense vector NAME; without it a
collection with several named dense vectors is read whole (``default``, else the first name, is
RecordBatch.vectors; the others RecordBatch.named) and records with several vectors are written
under their own names. ``sparse=NAME`` names the sparse vector (default ``sparse``). A point
missing one of the collection's named vectors is reported as a rejected read, never dropped.

Writes (upsert, delete, create, drop) live in ``qdrant_write``; the embedded engine's one
commit per write in ``qdrant_commit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from dataclasses import replace
from typing import Any, Sequence
from urllib.parse import urlencode, urlsplit

import numpy as np
import orjson

from vmkit.connectors.base import (
    Capabilities,
    CollectionInfo,
    Connector,
    first_vector,
)
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.connectors.qdrant.write import _TO_QDRANT, QdrantWrites, _sdk
from vmkit.connectors.shared import SharedHandles
from vmkit.core.errors import (
    ConfigError,
    InvalidData,
    TerminalError,
    TransientError,
)
from vmkit.core.records import RecordBatch, RecordId, Rejection, SparseVector

log = logging.getLogger("vmkit.connectors.qdrant.connector")

_FROM_QDRANT = {v: k for k, v in _TO_QDRANT.items()}

# The embedded engine allows one client per directory per process: share it, counted.
# In-memory data lives as long as the process, so that client is never closed before exit.
_CLIENTS: SharedHandles[Any] = SharedHandles(lambda client: client.close(), keep=frozenset({":memory:"}))
_LOCKS: dict[str, threading.RLock] = {}
_NO_LOCK = contextlib.nullcontext()
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class QdrantConnector(QdrantWrites, Connector):
    scheme = "qdrant"
    extra = "qdrant"
    capabilities = Capabilities(
        max_batch_records=1000,
        max_batch_bytes=16 * 1024 * 1024,  # half the server's default 32 MB request limit
        id_kinds=frozenset({"uuid", "uint"}),
        normalizes_cosine=True,
        sparse=True,
        named_vectors=True,
        namespaces=False,
        collections=True,
        collection_name_forbidden='<>:"/\\|?*',  # and control characters; at most 255
        max_collection_name=255,
        wire_bytes_per_float=12,  # REST sends JSON; gRPC would be 4
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if parts.netloc:  # server
            self.location = f"{'https' if self.params.get('https') == 'true' else 'http'}://{parts.netloc}"
            self.collection = parts.path.strip("/") or self.params.get("collection", "")
            self._key_env = self.params.get("api_key_env", "QDRANT_API_KEY")
        else:
            self.location = parts.path or ":memory:"
            if self.location.startswith("/:memory:"):
                self.location = ":memory:"
            self.collection = self.params.get("collection", "")
            self._key_env = ""
        if not self.collection:
            raise ConfigError("qdrant URI needs a collection: qdrant:///dir?collection=NAME")
        self._lock: contextlib.AbstractContextManager[Any]
        if not self._key_env:  # the embedded engine is one in-process object: serialize calls
            self.capabilities = replace(type(self).capabilities, parallel_writes=False)
            self._lock = _LOCKS.setdefault(self.location, threading.RLock())
        else:
            self._lock = _NO_LOCK
        self.vector_name = self.params.get("vector", "")
        self.sparse_name = self.params.get("sparse", "sparse")
        self._client: Any = None
        self._vectors: tuple[str, list[str]] | None = None  # (first, others) read from the schema

    # -- client lifecycle ------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._open()
        return self._client

    def _open(self) -> Any:
        sdk = _sdk()
        if self._key_env:  # server: a fresh client per connector
            key = os.environ.get(self._key_env) or None
            with warnings.catch_warnings():
                if urlsplit(self.location).hostname in _LOOPBACK:  # plain http is fine there
                    warnings.filterwarnings("ignore", message="Api key is used with an insecure")
                return sdk.QdrantClient(url=self.location, api_key=key, timeout=60)

        def open_embedded() -> Any:
            if self.location == ":memory:":
                return sdk.QdrantClient(location=":memory:")
            try:
                return sdk.QdrantClient(path=self.location)
            except RuntimeError as exc:  # portalocker: another process holds the directory
                raise ConfigError(f"qdrant directory {self.location} is in use: {exc}") from None

        return _CLIENTS.acquire(self.location, open_embedded)

    def single_process(self) -> str | None:
        if self._key_env:
            return None
        return ("Qdrant local mode opens its directory in one process only" if self.location != ":memory:"
                else "qdrant in-memory mode lives inside one process")

    def close(self) -> None:
        if self._client is None:
            return
        if self._key_env:
            self._client.close()
        else:
            _CLIENTS.release(self.location)
        self._client = None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an SDK call, turning its errors into Transient/Terminal."""
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below
            key = os.environ.get(self._key_env, "") if self._key_env else ""
            raise _classify(exc, key) from None

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        if not self._key_env and self.location != ":memory:" and not os.path.isdir(self.location):
            return None  # opening the embedded client would create the directory
        if not self._call(self.client.collection_exists, self.collection):
            return None
        info = self._call(self.client.get_collection, self.collection)
        vectors = info.config.params.vectors
        first, others = self._layout(vectors)
        params = vectors[first] if isinstance(vectors, dict) else vectors
        sparse = info.config.params.sparse_vectors or {}
        return CollectionInfo(
            name=self.collection,
            dimension=int(params.size),
            metric=_metric(params),
            count=self.count(),
            namespaces={},
            sparse=self.sparse_name in sparse,
            vector_name=first if others else "",
            extra_vectors={n: {"dimension": int(vectors[n].size), "metric": _metric(vectors[n])} for n in others},
        )

    def _layout(self, vectors: Any = None) -> tuple[str, list[str]]:
        """(first vector name, other named vectors) of the collection; ("", []) if unnamed."""
        if self._vectors is None or vectors is not None:
            if vectors is None:
                vectors = self._call(self.client.get_collection, self.collection).config.params.vectors
            if not isinstance(vectors, dict):
                self._vectors = ("", [])
            elif self.vector_name:
                if self.vector_name not in vectors:
                    raise TerminalError(f"collection {self.collection} has no vector named '{self.vector_name}'")
                self._vectors = (self.vector_name, [])
            else:
                first = first_vector(list(vectors))
                self._vectors = (first, sorted(n for n in vectors if n != first))
        return self._vectors

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        points, nxt = self.scroll_page(None if cursor is None else orjson.loads(cursor), limit)
        batch = self._to_batch(points)
        return batch, None if nxt is None else orjson.dumps(nxt).decode()

    def scroll_page(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        """Points in id order from ``offset``, and the id the next page starts at (or None)."""
        return self._call(self.client.scroll, self.collection, limit=limit, offset=offset,
                          with_payload=True, with_vectors=True)  # type: ignore[no-any-return]

    def partitions(self, n: int) -> list[Partition] | None:
        from vmkit.connectors.qdrant.partitions import id_ranges

        return id_ranges(self, n)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        from vmkit.connectors.qdrant.partitions import scan_range

        return scan_range(self, part, cursor, limit)

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """Qdrant's own random sampling: spread over the collection, one request."""
        models = _sdk().models
        result = self._call(
            self.client.query_points, self.collection,
            query=models.SampleQuery(sample=models.Sample.RANDOM), limit=n,
            with_payload=True, with_vectors=True,
        )
        return [self._to_batch(result.points)]

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        if not ids:
            return RecordBatch.empty(self._dimension())
        points = self._call(
            self.client.retrieve, self.collection, list(ids), with_payload=True, with_vectors=True
        )
        return self._to_batch(points)

    def count(self) -> int:
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def sibling(self, collection: str) -> "QdrantConnector":
        """The collection ``collection`` in the same place (the embedded engine's handle is
        shared), named in the query so that no path quoting is involved."""
        parts = urlsplit(self.uri)
        params = {k: v for k, v in self.params.items() if k != "namespaces"}  # a plain collection
        query = urlencode({**params, "collection": collection})
        path = "" if parts.netloc else parts.path
        return type(self)(f"{parts.scheme}://{parts.netloc}{path}?{query}")

    def list_collections(self) -> list[str]:
        if not self._key_env and self.location != ":memory:" and not os.path.isdir(self.location):
            return []  # as in describe(): opening the embedded client would create the directory
        return sorted(c.name for c in self._call(self.client.get_collections).collections)

    # -- aliases (used by vmkit.sync for cutover; the embedded engine supports them too) ------
    def alias_scope(self) -> str:
        """Where alias names live: one server, or one embedded directory."""
        return self.location

    def get_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None."""
        found = self._call(self.client.get_aliases).aliases
        return next((a.collection_name for a in found if a.alias_name == alias), None)

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this collection, atomically (delete + create in one request)."""
        models = _sdk().models
        ops: list[Any] = []
        if self.get_alias(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=self.collection, alias_name=alias)))
        self._call(self.client.update_collection_aliases, change_aliases_operations=ops)

    # -- conversions -----------------------------------------------------------------------
    def _dimension(self) -> int:
        info = self.describe()
        return 0 if info is None else info.dimension

    def _to_batch(self, points: list[Any]) -> RecordBatch:
        first, others = self._layout()
        keep, rejected = [], []
        for p in points:
            vec = p.vector
            lacking = [n for n in others if n not in vec] if isinstance(vec, dict) else []
            if lacking:  # a batch holds every vector for every record: report, never drop
                rejected.append(Rejection(p.id, f"point has no vector {lacking[0]!r} (the collection "
                                          f"has {[first, *others]})", f"vector.{lacking[0]}"))
            else:
                keep.append(p)
        dense: list[Any] = []
        sparse: list[SparseVector | None] = []
        named: dict[str, list[Any]] = {n: [] for n in others}
        for p in keep:
            vec = p.vector
            if isinstance(vec, dict):
                sp = vec.get(self.sparse_name)
                sparse.append(None if sp is None else SparseVector.of(sp.indices, sp.values))
                for n in others:
                    named[n].append(vec[n])
                vec = vec.get(first, [])
            else:
                sparse.append(None)
            dense.append(vec)
        dim = len(dense[0]) if dense else 0
        vectors = np.asarray(dense, dtype=np.float32) if keep else np.zeros((0, 0), np.float32)
        batch = RecordBatch(
            ids=[p.id for p in keep],
            vectors=vectors.reshape(len(keep), dim),
            metadata=[p.payload or {} for p in keep],
            sparse=sparse if any(s is not None for s in sparse) else None,
            named={n: np.asarray(v, np.float32).reshape(len(keep), -1) if keep else np.zeros((0, 0), np.float32)
                   for n, v in named.items()},
            vector_name=first if others else "",
        )
        batch.rejected.extend(rejected)
        return batch


def _metric(params: Any) -> str:
    return _FROM_QDRANT[str(getattr(params.distance, "value", params.distance))]


# 400s about the collection, not the records in the request: every write would fail alike, so
# they stop the run instead of being bisected into dead letters (server messages, qdrant
# lib/collection/src/operations/types.rs: "Vector dimension error", "Not existing vector name").
_COLLECTION_LEVEL = ("Vector dimension error", "Not existing vector name", "Not found: Collection")


def _classify(exc: Exception, secret: str = "") -> Exception:
    """Transient: 429, 5xx, timeouts and connection trouble. Everything else is terminal.
    The message is one line, with the API key scrubbed should a server or proxy echo it."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    text = str(exc).replace(secret, "***") if secret else str(exc)
    msg = f"qdrant: {name}: {' '.join(text.split())[:500]}"
    if status is not None:
        if status == 429 or status >= 500:
            return TransientError(msg, retry_after=_retry_after(exc))
        if status in (400, 422) and not any(m in text for m in _COLLECTION_LEVEL):
            return InvalidData(msg)
        return TerminalError(msg)
    if name in {"ResponseHandlingException", "ConnectError", "ReadTimeout", "WriteTimeout",
                "ConnectTimeout", "RemoteProtocolError", "TimeoutException"}:
        return TransientError(msg)
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        if getattr(code(), "name", "") in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}:
            return TransientError(msg)
    return TerminalError(msg)


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
