"""SochDB connector (embedded ``sochdb`` wheel): source and target.

URI: ``sochdb:///abs/dir?collection=NAME[&namespace=default][&sync=full|normal|off]``.

A record is the JSON document ``Collection.insert_batch`` writes under the key
``{namespace}/collections/{collection}/vectors/{id}``, written directly: ``insert_batch`` also
builds an in-memory HNSW graph that SochDB rebuilds from these documents on reopen anyway (8 s
per 20,000 16-d records, every vector kept in Python, log lines per batch). Ids are strings
(int ids travel as decimal strings marked ``_vmkit_id_kind`` by the transform).

Scan: no public iterator. A range scan from just after the cursor's key (cursor = last id)
reads keys in byte order, so a resume is exact across restarts. The engine materialises the
rest of the range on each range scan (~0.2 s per 200,000 records), so pages come from a
read-ahead of up to ``_AHEAD`` records: a full scan costs O(N^2 / _AHEAD).

SochDB 0.8.3 quirks: a second ``Database.open`` of a directory fails (any process), so one
handle per directory is shared; a deleted key reappears after a reopen with an empty value
(the WAL replays tombstones as puts of b""), so empty values are absent records; the engine
prints ``[HNSW] ...`` to fd 2, so SDK calls run inside ``_quiet()``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.connectors.shared import SharedHandles, import_sdk
from vmkit.core.errors import ConfigError, InvalidData, TerminalError, TransientError
from vmkit.core.records import RecordBatch, RecordId, Rejection

native_log = logging.getLogger("vmkit.connectors.sochdb.connector.native")

_TO_SOCH = {"cosine": "cosine", "euclidean": "euclidean", "dot": "dot_product"}
_FROM_SOCH = {v: k for k, v in _TO_SOCH.items()}
_AHEAD, _AHEAD_BYTES = 10_000, 32 * 1024 * 1024
_NATIVE_LINE = re.compile(rb"^\s*(\[[A-Za-z][\w ]*\]|WARNING: SOCHDB_)")
_Row = tuple[bytes, bytes]
_LOCK = threading.RLock()  # every SDK call: one handle per directory, fd 2 is process-wide
_SINK = tempfile.TemporaryFile()  # noqa: SIM115 - fd 2 stand-in for the process lifetime
_depth = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Serialize SDK work and swap fd 2 for ``_SINK`` (reentrant). Afterwards the engine's lines
    go to ``native_log`` (DEBUG); anything else written meanwhile (other threads, panics) goes
    back to the real stderr, so nothing is lost."""
    global _depth
    with _LOCK:
        saved = -1
        if _depth == 0:
            with contextlib.suppress(OSError, ValueError, AttributeError):  # no usable fd 2
                sys.stderr.flush()  # text written before the swap goes out first
                saved = os.dup(2)
                os.dup2(_SINK.fileno(), 2)
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if saved >= 0:
                os.dup2(saved, 2)
                os.close(saved)
                sink = _SINK.fileno()  # raw fd calls: fd 2 wrote through the same file offset
                data = os.pread(sink, os.fstat(sink).st_size, 0)
                os.ftruncate(sink, 0)
                os.lseek(sink, 0, os.SEEK_SET)
                for line in data.splitlines(keepends=True):
                    if _NATIVE_LINE.match(line):
                        native_log.debug("%s", line.decode(errors="replace").rstrip())
                    else:
                        os.write(2, line)


@dataclass
class _Handle:
    db: Any
    generation: int = 0  # bumped by every write: read-ahead rows of an older one are stale


def _close_handle(handle: _Handle) -> None:
    with _quiet():
        handle.db.close()


_HANDLES: SharedHandles[_Handle] = SharedHandles(_close_handle)


def _sdk() -> Any:
    return import_sdk("sochdb", "sochdb", "sochdb")


class SochDBConnector(Connector):
    scheme = "sochdb"
    extra = "sochdb"
    capabilities = Capabilities(
        max_batch_records=5000,
        max_batch_bytes=64 * 1024 * 1024,
        id_kinds=frozenset({"string", "uuid"}),
        metrics=frozenset(_TO_SOCH),
        sparse=False,
        namespaces=False,  # one SochDB namespace per URI
        parallel_writes=False,  # one writer per directory
        wire_bytes_per_float=12,  # vectors are stored as JSON text
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        self.path = parts.netloc + parts.path  # sochdb:///abs/dir or sochdb://rel/dir
        self.collection = self.params.get("collection", "")
        self.namespace = self.params.get("namespace", "default")
        self.sync = self.params.get("sync", "full")  # full: every acknowledged batch is fsynced
        if not self.path or not self.collection:
            raise ConfigError("sochdb URI needs a directory and a collection: sochdb:///dir?collection=C")
        if "/" in self.collection + self.namespace or self.sync not in ("full", "normal", "off"):
            raise ConfigError("sochdb: names cannot contain '/'; sync= is full, normal or off")
        self._key = os.path.realpath(self.path)
        self._prefix = f"{self.namespace}/collections/{self.collection}/vectors/".encode()
        self._end = self._prefix[:-1] + b"0"  # '0' follows '/': every key of the prefix is below
        self._config_key = f"{self.namespace}/_collections/{self.collection}".encode()
        self._handle: _Handle | None = None
        self._ahead: tuple[bytes, int, list[_Row], bool] | None = None  # start, gen, rows, exhausted

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(db)`` inside ``_quiet()`` on the shared handle; classify its errors."""
        with _quiet():
            if self._handle is None:
                self._handle = _HANDLES.acquire(self._key, self._open)
            try:
                return fn(self._handle.db)
            except (TransientError, TerminalError):
                raise
            except Exception as exc:
                raise _classify(exc) from exc

    def _open(self) -> _Handle:
        sdk = _sdk()
        try:
            return _Handle(sdk.Database.open(self._key, {"sync_mode": self.sync}))
        except Exception as exc:  # noqa: BLE001 - the engine only says "failed to open"
            raise ConfigError(f"sochdb directory {self._key} cannot be opened "
                              f"(in use by another process?): {exc}") from None

    def single_process(self) -> str | None:
        return "SochDB opens its directory in one process only"

    def close(self) -> None:
        if self._handle is not None:
            _HANDLES.release(self._key)
        self._handle = self._ahead = None

    def _wrote(self) -> None:
        assert self._handle is not None
        self._handle.generation += 1

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        config = self._call(self._config)
        if config is None:
            return None
        dim = config.dimension or self.scan(None, 1)[0].dimension  # auto-dimension: data decides
        metric = _FROM_SOCH.get(config.metric.value, config.metric.value)
        return CollectionInfo(self.collection, int(dim), metric, self.count())

    def count(self) -> int:
        """O(N): the engine has no count; every live key is read."""
        return int(self._call(lambda db: sum(1 for _ in self._rows(db, self._prefix))))

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        start = self._prefix
        if cursor is not None:
            try:
                start = self._prefix + orjson.loads(cursor)["after"].encode() + b"\x00"
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise TerminalError(f"not a sochdb scan cursor: {cursor[:80]!r}") from None
        rows, more, dim = self._call(lambda db: (*self._page(db, start, max(1, limit)), self._dim(db)))
        if not more or not rows:
            return self._to_batch(rows, dim), None
        after = rows[-1][0][len(self._prefix):].decode()
        return self._to_batch(rows, dim), orjson.dumps({"after": after}).decode()

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        keys = [self._prefix + i.encode() for i in ids if isinstance(i, str)] if not namespace else []

        def run(db: Any) -> tuple[list[_Row], int | None]:
            with db.transaction() as txn:  # not get_batch: it answers None for all on a failure
                return [(k, v) for k in keys if (v := txn.get(k))], self._dim(db)

        return self._to_batch(*self._call(run))

    def upsert(self, batch: RecordBatch) -> None:
        bad = ~np.isfinite(batch.vectors).all(axis=1)
        if bad.any():
            raise InvalidData(f"record {batch.ids[int(np.argmax(bad))]!r}: NaN or Inf in its vector")
        items = [_document(self._prefix, rid, vec, meta) for rid, vec, meta, _ in batch.rows()]

        def run(db: Any, part: list[_Row]) -> None:
            config = self._config(db)
            if config is None:
                raise TerminalError(f"sochdb collection {self.collection} does not exist")
            if config.dimension and config.dimension != batch.dimension:
                raise TerminalError(f"dimension {batch.dimension} does not match sochdb collection "
                                    f"{self.collection} ({config.dimension})")
            try:
                written = db.put_batch(part)  # one transaction, one WAL commit
            finally:
                self._wrote()
            if written != len(part):
                raise TransientError(f"sochdb wrote {written} of {len(part)} records")

        for part in _chunks(items, self.capabilities):
            self._call(functools.partial(run, part=part))

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        keys = [self._prefix + i.encode() for i in ids if isinstance(i, str)] if not namespace else []

        def run(db: Any) -> None:
            with db.transaction() as txn:
                for key in keys:
                    txn.delete(key)
            self._wrote()

        if keys:
            self._call(run)

    def create(self, spec: TargetSpec) -> None:
        if spec.metric not in _TO_SOCH or spec.sparse:
            raise TerminalError(f"sochdb cannot hold '{spec.metric}' (cosine, euclidean, dot; no sparse)")
        sdk = _sdk()
        config = sdk.CollectionConfig(name=self.collection, dimension=spec.dimension,
                                      metric=sdk.DistanceMetric(_TO_SOCH[spec.metric]))

        def run(db: Any) -> None:
            if self._config(db) is not None:
                raise TerminalError(f"sochdb collection {self.collection} already exists")
            try:
                db.get_or_create_namespace(self.namespace).create_collection(config)
            except sdk.CollectionExistsError:  # dropped in an earlier session (empty value)
                db.ffi_collection_create(  # and the SDK refuses: do what create_collection does
                    self.namespace, self.collection, spec.dimension, _TO_SOCH[spec.metric])
                db.put(self._config_key, json.dumps(config.to_dict()).encode())
            self._wrote()

        self._call(run)

    def drop(self) -> None:
        def run(db: Any) -> None:
            if db.get(self._config_key) is not None:
                db.get_or_create_namespace(self.namespace).delete_collection(self.collection)
                self._wrote()

        self._call(run)

    # -- helpers ---------------------------------------------------------------------------
    def _config(self, db: Any) -> Any:
        raw = db.get(self._config_key)  # empty: dropped in an earlier session
        return _sdk().CollectionConfig.from_dict(json.loads(raw), name=self.collection) if raw else None

    def _dim(self, db: Any) -> int | None:
        """The declared dimension (None: left to the data); TerminalError if there is no collection."""
        config = self._config(db)
        if config is None:
            raise TerminalError(f"sochdb collection {self.collection} does not exist")
        return int(config.dimension) if config.dimension else None

    def _rows(self, db: Any, start: bytes, chunk: int = 1000) -> Generator[_Row, None, None]:
        """Live rows from ``start`` in key order (the cursor depends on it: checked)."""
        last = b""
        with db.transaction() as txn, contextlib.closing(txn.scan_batched(start, self._end, chunk)) as it:
            for key, value in it:
                if key <= last:
                    raise TerminalError("sochdb range scan returned keys out of order")
                last = key
                if value and key.startswith(self._prefix):
                    yield key, value

    def _page(self, db: Any, start: bytes, limit: int) -> tuple[list[_Row], bool]:
        """Up to ``limit`` rows from ``start`` and whether more follow, via the read-ahead."""
        assert self._handle is not None
        gen, ahead = self._handle.generation, self._ahead
        if ahead is None or ahead[:2] != (start, gen) or (len(ahead[2]) <= limit and not ahead[3]):
            want, rows, size, exhausted = max(limit + 1, _AHEAD), [], 0, True
            it = self._rows(db, start, min(want, 1000))
            for row in it:
                rows.append(row)
                size += len(row[1])
                if len(rows) >= want or (size >= _AHEAD_BYTES and len(rows) > limit):
                    exhausted = False
                    break
            it.close()  # ends the engine scan and its transaction now
            ahead = (start, gen, rows, exhausted)
        page, rest = ahead[2][:limit], ahead[2][limit:]
        self._ahead = (page[-1][0] + b"\x00", gen, rest, ahead[3]) if page else None
        return page, bool(rest) or not ahead[3]

    def _to_batch(self, rows: list[_Row], dim: int | None) -> RecordBatch:
        ids: list[RecordId] = []
        vectors, metas, rejected = [], [], []
        for key, value in rows:
            rid = key[len(self._prefix):].decode(errors="replace")
            try:
                doc = orjson.loads(value)
                vec = doc.get("vector")
                if doc.get("is_multi_vector") or vec is None or (dim is not None and len(vec) != dim):
                    raise ValueError("a multi-vector document, no vector stored, or another dimension")
            except (orjson.JSONDecodeError, ValueError, AttributeError, TypeError) as exc:
                rejected.append(Rejection(rid, f"sochdb document not readable: {exc}", "vector"))
                continue
            dim = len(vec)
            ids.append(rid)
            vectors.append(vec)
            metas.append(doc.get("metadata") or {})
        arr = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dim or 0)
        return RecordBatch(ids, arr, metas, rejected=rejected)


def _chunks(items: list[_Row], caps: Capabilities) -> Iterator[list[_Row]]:
    """Runs within the record and byte limits, sized by the encoded documents themselves."""
    start, used = 0, 0
    for i, (key, value) in enumerate(items):
        size = len(key) + len(value)
        if i > start and (i - start >= caps.max_batch_records or used + size > caps.max_batch_bytes):
            yield items[start:i]
            start, used = i, 0
        used += size
    if start < len(items):
        yield items[start:]


def _document(prefix: bytes, rid: RecordId, vec: np.ndarray, meta: dict[str, Any]) -> _Row:
    """Key and document as ``Collection.insert_batch`` writes them (same keys, same order)."""
    if not isinstance(rid, str) or not rid:
        raise InvalidData(f"record {rid!r}: sochdb ids are non-empty strings")
    doc = {"id": rid, "metadata": meta, "content": meta.get("_content", ""),
           "is_multi_vector": False, "vector": vec}
    try:
        return prefix + rid.encode(), orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:  # ints past 64 bits, non-string keys, odd types
        raise InvalidData(f"record {rid!r}: metadata not storable as JSON: {exc}") from None


def _classify(exc: Exception) -> Exception:
    """Conflicts, lock waits and interrupted I/O are transient; refusals of the data are
    InvalidData; the rest (closed handle, missing collection, engine failure) terminal."""
    name, text = type(exc).__name__, str(exc)
    if name in {"TransactionConflictError", "LockTimeoutError", "DatabaseLockedError"} or (
            name == "TransactionError" and "conflict" in text.lower()) or (
            isinstance(exc, OSError) and exc.errno in {4, 11, 16}):  # EINTR, EAGAIN, EBUSY
        return TransientError(f"sochdb: {name}: {text[:500]}")
    if name in {"ValidationError", "DimensionMismatchError", "InvalidMetadataError"}:
        return InvalidData(f"sochdb: {name}: {text[:500]}")
    return TerminalError(f"sochdb: {name}: {text[:500]}")
