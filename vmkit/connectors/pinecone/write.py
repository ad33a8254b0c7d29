"""Pinecone writes: everything PineconeConnector does that changes what the service holds.

Upserting (request bodies fitted under 2 MB; a body the service still finds too big split
in halves and sent again, never dead-lettered; upsert bytes paced; a refused request's first
offending record named), deleting (deleted records paced per namespace and per index), and creating or dropping the index with a wait until it is ready or gone.
They live apart from ``pinecone.py``, which keeps the SDK plumbing, error mapping and the
reads, so each module has one concern. ``PineconeWrites`` is a mixin: ``PineconeConnector``
inherits it and holds the state and plumbing it uses (declared below for type checking only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vmkit.connectors.base import TargetSpec
from vmkit.connectors.batching import split_batch
from vmkit.connectors.pinecone.scan import canonical_ns
from vmkit.connectors.pinecone.wire import namespace_missing
from vmkit.core.errors import InvalidData, TerminalError, TransientError
from vmkit.core.records import RecordBatch, RecordId, Rejection

if TYPE_CHECKING:
    import threading
    from contextlib import AbstractContextManager

    from vmkit.connectors.base import Capabilities

log = logging.getLogger("vmkit.connectors.pinecone.connector")  # the connector's logger, as before the split

TO_PINECONE = {"cosine": "cosine", "euclidean": "euclidean", "dot": "dotproduct"}
FETCH_IDS = 1000  # ids per fetch / delete request
REQUEST_BYTES = 2 * 1024 * 1024 - 4096  # upsert body ceiling, with room for the envelope
MAX_METADATA = 40 * 1024
MAX_NAMESPACE = 512  # pinecone/_internal/validation.py: NAMESPACE_NAME_MAX_LEN


def namespace_problem(namespace: str) -> str | None:
    """Why a Pinecone index cannot hold a namespace of this name, or None if it can.

    The rule is the SDK's (pinecone 10.2, ``pinecone/_internal/validation.py``,
    ``require_valid_namespace_name``): ASCII, no NUL, 1-512 characters. ``""`` names the
    default namespace (``__default__``) and is always there. The SDK checks names only where a
    namespace is named on its own (create, describe, delete); ``Index.upsert`` sends any, and
    the service refuses each request, so a migration would dead-letter every record of it."""
    if namespace == "":
        return None
    if len(namespace) > MAX_NAMESPACE:
        return f"it has {len(namespace)} characters, over Pinecone's {MAX_NAMESPACE}"
    if not namespace.isascii():
        return "it is not ASCII (Pinecone namespace names are ASCII without NUL)"
    if "\x00" in namespace:
        return "it holds the NUL character (Pinecone namespace names are ASCII without NUL)"
    return None


class PineconeWrites:
    """Writes of PineconeConnector (see the module docstring)."""

    if TYPE_CHECKING:
        index_name: str
        cloud: str
        region: str
        ready_timeout: float
        capabilities: Capabilities
        _lock: threading.RLock
        _index: Any
        _caps: Capabilities | None
        _max_body: int  # upsert body ceiling in bytes: REQUEST_BYTES, or lower once refused

        def data_plane(self) -> Any: ...
        def _control(self) -> Any: ...
        def _model(self, refresh: bool = False) -> Any: ...
        def dimension(self) -> int: ...
        def pace(self, op: str, namespace: str = "", weight: int = 1) -> None: ...
        def errors(self, what: str, write: bool = False) -> AbstractContextManager[None]: ...

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        namespace = canonical_ns(batch.namespace)
        problem = namespace_problem(namespace)
        if problem is not None:  # before any request: not the records' fault, so not InvalidData
            raise TerminalError(
                f"Pinecone index '{self.index_name}' cannot take namespace {namespace!r}: "
                f"{problem}. Nothing of it was written; plan again with namespace_policy=field "
                "(the namespace kept in a metadata field) or give the namespaces other names")
        for chunk in split_batch(batch, self.capabilities):
            for part, items, size in self._fit(chunk):
                self._send(part, items, size, namespace)

    def _send(self, part: RecordBatch, items: list[dict[str, Any]], size: int,
              namespace: str) -> None:
        """One upsert request; one the service finds too big is split in halves and sent again."""
        self.pace("upsert", namespace)
        self.pace("upsert_bytes", namespace, size)
        try:
            with self.errors(f"upsert of {len(part)} records into namespace '{namespace}'",
                             write=True):
                self.data_plane().upsert(vectors=items, namespace=namespace)
        except InvalidData as exc:
            if _oversized(exc) and len(part) > 1:
                # Pinecone's own measure of the body differs from ours (it answers 400
                # "Request size ...MB exceeds the maximum supported size of 2MB", or 413, bare
                # from a proxy): the records are fine, the request was not. Later bodies are
                # kept under half of this one.
                self._max_body = max(1024, min(self._max_body, size // 2))
                log.info("Pinecone refused an upsert of %d bytes as too large (%s); sending it "
                         "in halves, bodies at most %d bytes from now on", size, exc,
                         self._max_body)
                for sub, sub_items, sub_size in self._fit(part):  # in halves, at least
                    self._send(sub, sub_items, sub_size, namespace)
                return
            culprit = self._diagnose(part)
            raise InvalidData(f"{exc}; first offending record: {culprit}"
                              if culprit else str(exc)) from exc.__cause__

    def _fit(self, batch: RecordBatch) -> Iterator[tuple[RecordBatch, list[dict[str, Any]], int]]:
        """The request bodies exactly as sent and their sizes, halved until each is under 2 MB
        (or a smaller ceiling learned from a refusal; the size estimate in split_batch can run
        short for sparse-heavy records)."""
        items = [_wire(batch, i) for i in range(len(batch))]
        size = len(orjson.dumps({"vectors": items, "namespace": batch.namespace}))
        if size < self._max_body or len(batch) == 1:
            if size > REQUEST_BYTES:
                raise InvalidData(f"record {batch.ids[0]!r} is over Pinecone's 2 MB request "
                                  "limit on its own")
            yield batch, items, size
        else:
            half = len(batch) // 2
            yield from self._fit(batch.take(range(half)))
            yield from self._fit(batch.take(range(half, len(batch))))

    def _diagnose(self, batch: RecordBatch) -> Rejection | None:
        """The first record that breaks a rule Pinecone enforces, to name it in the error."""
        dim = self.dimension()
        for rid, vec, meta, sparse in batch.rows():
            ns = batch.namespace
            if not isinstance(rid, str) or not 1 <= len(rid) <= 512 or not rid.isascii() \
                    or "\x00" in rid:
                return Rejection(rid, "id must be an ASCII string of 1-512 characters", "id", ns)
            if dim and len(vec) != dim:
                return Rejection(rid, f"dimension {len(vec)} != index dimension {dim}", "vector", ns)
            if not np.isfinite(vec).all():
                return Rejection(rid, "vector has NaN or Inf values", "vector", ns)
            if len(vec) and not vec.any():
                return Rejection(rid, "all-zero dense vector", "vector", ns)
            if sparse is not None and len(sparse.indices) > 1000:
                return Rejection(rid, f"{len(sparse.indices)} sparse values (max 1000)", "sparse", ns)
            for key, value in meta.items():
                ok = isinstance(value, (str, bool, int, float)) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value))
                if not ok or key.startswith("$"):
                    return Rejection(rid, "Pinecone metadata takes strings, numbers, booleans and "
                                     "lists of strings, under keys not starting with '$'",
                                     f"metadata.{key}", ns)
            if len(orjson.dumps(meta)) > MAX_METADATA:
                return Rejection(rid, "metadata over 40 KB", "metadata", ns)
        return None

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        wanted, index = [str(i) for i in ids], self.data_plane()
        for start in range(0, len(wanted), FETCH_IDS):
            chunk = wanted[start:start + FETCH_IDS]
            self.pace("delete", namespace)
            self.pace("delete_records", namespace, len(chunk))
            self.pace("delete_records_index", "", len(chunk))
            try:
                with self.errors("delete"):
                    index.delete(ids=chunk, namespace=canonical_ns(namespace))
            except TerminalError as exc:
                if namespace_missing(exc):  # 404 "Namespace not found": nothing to delete
                    return
                raise

    def create(self, spec: TargetSpec) -> None:
        metric = TO_PINECONE.get(spec.metric)
        if metric is None:
            raise TerminalError(f"Pinecone has no '{spec.metric}' metric "
                                f"(it offers {', '.join(sorted(TO_PINECONE))})")
        fields: dict[str, Any] = {}
        if spec.dimension > 0:
            fields["_values"] = {"type": "dense_vector", "dimension": spec.dimension,
                                 "metric": metric}
        elif spec.sparse:
            fields["_sparse_values"] = {"type": "sparse_vector"}
        if spec.sparse and spec.dimension > 0 and metric != "dotproduct":
            log.warning("index '%s' stores sparse values, but only dotproduct indexes can query "
                        "them (metric is %s)", self.index_name, metric)
        with self.errors("create index"):
            self._control().indexes.create(
                name=self.index_name,
                schema={"fields": fields},
                deployment={"deployment_type": "managed", "cloud": self.cloud,
                            "region": self.region},
                deletion_protection="disabled",
                timeout=-1,  # we poll below, faster than the SDK's 5 s interval
            )
        self._wait(lambda m: m is not None and m.status.ready, "ready")
        self._caps = None

    def drop(self) -> None:
        pc = self._control()
        from pinecone.errors.exceptions import NotFoundError

        try:
            with self.errors("delete index"):
                pc.indexes.delete(self.index_name, timeout=-1)
        except TerminalError as exc:
            if not isinstance(exc.__cause__, NotFoundError):
                raise
        self._wait(lambda m: m is None, "gone")
        with self._lock:
            if self._index is not None:
                self._index.close()
            self._index, self._caps = None, None

    def _wait(self, done: Any, what: str) -> None:
        deadline, pause = time.monotonic() + self.ready_timeout, 0.1
        while True:
            model = self._model(refresh=True)
            if done(model):
                return
            state = model.status.state if model is not None else "absent"
            if state in ("InitializationFailed", "Terminating", "Disabled") and what == "ready":
                raise TerminalError(f"Pinecone index '{self.index_name}' is {state}")
            if time.monotonic() > deadline:
                raise TransientError(f"Pinecone index '{self.index_name}' not {what} after "
                                     f"{self.ready_timeout:.0f}s (state {state})")
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _oversized(exc: BaseException) -> bool:
    """Whether a refused upsert was refused for its size: HTTP 413 (with the service's text, or
    bare from a proxy), or 400 "Request size ... exceeds the maximum supported size" (issue 21;
    docs.pinecone.io "Database limits": 2 MB per upsert request)."""
    cause = exc.__cause__
    status = getattr(cause, "status_code", None)
    text = str(getattr(cause, "message", "") or exc).lower()
    return status == 413 or (status == 400 and "exceeds the maximum supported size" in text)


def _wire(batch: RecordBatch, i: int) -> dict[str, Any]:
    """One record in the SDK's dict form (ids must already be strings: see _diagnose)."""
    rid = batch.ids[i]
    if not isinstance(rid, str):
        raise InvalidData(f"record {rid!r} [id]: Pinecone ids are strings; the plan must map "
                          "integer ids first")
    item: dict[str, Any] = {"id": rid, "values": batch.vectors[i].tolist()}
    sparse = batch.sparse[i] if batch.sparse is not None else None
    if sparse is not None and len(sparse.indices):
        item["sparse_values"] = {"indices": sparse.indices.tolist(),
                                 "values": sparse.values.tolist()}
    if batch.metadata[i]:
        item["metadata"] = batch.metadata[i]
    return item
