"""Parquet connector: source and target. ``parquet:///abs/dir[?layout=vmkit|pinecone|weaviate]``.

A directory of part files and a manifest (``manifest.py``); columns per layout in ``layout.py``.
Each ``upsert(batch)`` writes one part (a big batch: one per core, side by side), named from a hash of the batch's (namespace, ids) and of
its bytes, aside then renamed, and then the manifest the same way: a replayed batch (a resumed
migration writes its last batch again) replaces its own part instead of adding a copy, and
a crash at any point leaves the previous manifest and the parts it lists intact. ``delete``
rewrites the parts holding the ids (new names, then the manifest, then the old files go).
Readers keep the newest copy of a (namespace, id) (``parts.py``).

``layout=pinecone`` is the directory Pinecone's bulk import reads (one sub-directory per
namespace; docs.pinecone.io/guides/index-data/import-data and .../understanding-imports, cited
in ``layout.py``), with Pinecone's own limits as capabilities: string ids only.

Scan cursor: ``[part index in manifest order, row]``, so a scan resumes in a new process.
A part whose footer is unreadable or whose schema is not the layout's is a PlanError at
``describe()`` naming the file; a part whose bytes do not match the manifest's digest when
read is dead-lettered row by row (``source_unreadable``, naming file and row), never read in part.

``layout=weaviate`` reads a Weaviate collection export (Weaviate 1.37 preview), read-only: a
connector of its own, ``weaviate_export.py``, which ``ParquetConnector(uri)`` returns.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

import numpy as np

from vmkit.connectors.base import METRICS, Capabilities, CollectionInfo, Connector
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.core.errors import ConfigError, TerminalError
from vmkit.core.records import RecordBatch, RecordId

from . import manifest as mf
from .layout import from_table, unreadable_rows
from .manifest import Manifest
from .parts import KeyCache, LiveIndex, Unreadable, build_index, check_footers, key_of, read_part
from .write import ParquetWrites

log = logging.getLogger(__name__)

_VMKIT = Capabilities(
    max_batch_records=100_000, max_batch_bytes=512 * 1024 * 1024, metrics=frozenset(METRICS),
    sparse=True, named_vectors=True, namespaces=True, metadata_objects=False, metadata_big_ints=True,
    parallel_writes=False,  # one manifest: writes are serialized
)
# What Pinecone's import takes is what Pinecone holds: its connector's limits
# (vmkit/connectors/pinecone/connector.py CAPABILITIES), without the wire and consistency ones.
_PINECONE = Capabilities(
    max_batch_records=100_000, max_batch_bytes=512 * 1024 * 1024, id_kinds=frozenset({"string", "uuid"}),
    max_id_length=512, id_ascii_only=True, metrics=frozenset({"cosine", "euclidean", "dot"}), sparse=True,
    namespaces=True, metadata_nested=False, metadata_null=False, metadata_mixed_lists=False,
    metadata_big_ints=False, max_metadata_bytes=40_960, field_name_pattern=r"(?!\$)[\s\S]*",
    rejects_zero_vectors=True, parallel_writes=False,
)
_SAMPLE_PARTS = 16


class ParquetConnector(ParquetWrites, Connector):
    scheme = "parquet"
    extra = "parquet"

    def __new__(cls, uri: str) -> Any:
        """``layout=weaviate`` is a read-only reader of another shape (``weaviate_export.py``)."""
        if cls is ParquetConnector and parse_qs(urlsplit(uri).query).get("layout", [""])[-1] == "weaviate":
            from .weaviate_export import WeaviateExport

            return WeaviateExport(uri)
        return super().__new__(cls)

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        path = parts.netloc + parts.path
        self.layout = self.params.get("layout", "vmkit")
        if self.layout not in ("vmkit", "pinecone"):
            raise ConfigError(f"parquet:// layout must be vmkit, pinecone or weaviate, got {self.layout!r}")
        if not path.startswith("/"):
            raise ConfigError("parquet:// needs an absolute directory: parquet:///abs/dir")
        self.root = Path(path)
        self.capabilities = _PINECONE if self.layout == "pinecone" else _VMKIT
        self._lock = threading.RLock()
        self._m: Manifest | None = None
        self._index: LiveIndex | None = None
        self._keys: KeyCache | None = None
        self._checked = -1  # next_seq of the manifest whose footers were checked
        self._pool: ThreadPoolExecutor | None = None  # writes the files of one upsert side by side
        self._cache: dict[str, Any] = {}  # file -> table: the parts last written, or the last read

    # -- state -----------------------------------------------------------------------------
    def _manifest(self, required: bool = True) -> Manifest | None:
        if self._m is None:
            self._m = mf.load(self.root)
            if self._m is not None and self._m.layout != self.layout:
                raise ConfigError(f"parquet directory {self.root} holds layout={self._m.layout}, "
                                  f"the URI asks for layout={self.layout}")
        if self._m is None and required:
            raise TerminalError(f"parquet directory {self.root} holds no vmkit manifest")
        return self._m

    def _key_cache(self) -> KeyCache:
        m = self._manifest()
        assert m is not None
        if self._keys is None or self._keys.m is not m:
            self._keys = KeyCache(self.root, m)
        return self._keys

    def _live(self) -> LiveIndex:
        if self._index is None:
            self._index = build_index(self._key_cache().m, self._key_cache())
        return self._index

    def _changed(self) -> None:
        self._index, self._cache = None, {}

    def _table(self, m: Manifest, p: int) -> Any:
        part = m.parts[p]
        if part.file not in self._cache:
            self._cache = {part.file: read_part(self.root, m, part)}
        return self._cache[part.file]

    def close(self) -> None:
        self._m, self._index, self._cache, self._keys = None, None, {}, None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- contract: reading -----------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        with self._lock:
            m = self._manifest(required=False)
            if m is None:
                return None
            if self._checked != m.next_seq:
                check_footers(self.root, m)
                self._checked = m.next_seq
            counts = self._live().counts
            return CollectionInfo(m.name, m.dimension, m.metric, sum(counts.values()), dict(counts),
                                  sparse=m.sparse, vector_name=m.vector_name,
                                  extra_vectors=dict(m.extra_vectors))

    def count(self) -> int:
        with self._lock:
            return sum(self._live().counts.values()) if self._manifest(required=False) else 0

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self._scan_parts(cursor, limit, 0, None)

    def partitions(self, n: int) -> list[Partition] | None:
        """Runs of whole part files ``[lower, upper)`` (positions in the manifest), cut where
        the records so far pass each n-th of the total; the last open, so parts written after
        planning are read by it."""
        with self._lock:
            m = self._manifest()
            assert m is not None
            sizes = [part.records for part in m.parts]
        if n < 2 or len(sizes) < 2:
            return None
        total, cuts, run = sum(sizes), [0], 0
        for p, size in enumerate(sizes[:-1]):
            run += size
            if run * n >= total * len(cuts) and len(cuts) < n:
                cuts.append(p + 1)
        bounds = [*cuts, None]
        return [Partition(f"{i:04d}", "", None if i == 0 else bounds[i], bounds[i + 1],
                          sum(sizes[bounds[i]:bounds[i + 1]])) for i in range(len(cuts))]

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        return self._scan_parts(cursor, limit, int(part.lower or 0), None if part.upper is None else int(part.upper))

    def _scan_parts(self, cursor: str | None, limit: int, lower: int, upper: int | None) -> tuple[RecordBatch, str | None]:
        """A page of the parts ``[lower, upper)`` (None: to the last) from the cursor."""
        with self._lock:
            m = self._manifest()
            assert m is not None
            p, row = _cursor(cursor) if cursor is not None else (lower, 0)
            index = self._live()
            stop = len(m.parts) if upper is None else min(upper, len(m.parts))
            while p < stop:
                part = m.parts[p]
                end = min(row + max(1, limit), part.records)
                nxt = _next(m, p, end, stop)
                if row >= part.records:
                    p, row = p + 1, 0
                    continue
                try:
                    table = self._table(m, p)
                except Unreadable as exc:
                    log.warning("parquet part %s: %s; its rows are dead-lettered", part.file, exc)
                    batch = _shaped(RecordBatch.empty(), m, part.namespace)
                    batch.rejected.extend(unreadable_rows(part.file, list(range(row, end)), part.namespace,
                                                          str(exc)))
                    return batch, nxt
                mask = index.masks[p]
                rows = np.arange(row, end)
                if mask is not None:
                    rows = rows[mask[row:end]]
                if len(rows):
                    chosen = table.slice(row, end - row) if mask is None else table.take(rows)
                    return from_table(chosen, m, part.namespace, part.file, rows.tolist()), nxt
                p, row = (p, end) if end < part.records else (p + 1, 0)
            return _shaped(RecordBatch.empty(), m, ""), None

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` live records from up to ``_SAMPLE_PARTS`` parts drawn by size (reading
        every part to sample a few thousand records would cost a whole extra read)."""
        with self._lock:
            m = self._manifest()
            assert m is not None
            index, rng = self._live(), np.random.default_rng(seed)
            sizes = np.array([p.records for p in m.parts], float)
            if not len(sizes) or sizes.sum() == 0:
                return []
            chosen = rng.choice(len(sizes), min(_SAMPLE_PARTS, len(sizes)), replace=False, p=sizes / sizes.sum())
            out = []
            for p in sorted(int(c) for c in chosen):
                mask = index.masks[p]
                live = np.flatnonzero(mask) if mask is not None else np.arange(m.parts[p].records)
                if not len(live):
                    continue
                rows = np.sort(rng.choice(live, min(len(live), max(1, n // len(chosen))), replace=False))
                try:
                    table = self._table(m, p).take(rows)
                except Unreadable:
                    continue
                out.append(from_table(table, m, m.parts[p].namespace, m.parts[p].file, rows.tolist()))
            return out

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        with self._lock:
            m = self._manifest()
            assert m is not None
            cache = self._key_cache()
            newest_first = [p for p in range(len(m.parts) - 1, -1, -1) if m.parts[p].namespace == namespace]
            by_part: dict[int, list[int]] = {}
            for rid in ids:  # the newest part holding a key holds its live record
                key = key_of(namespace, rid)
                for p in newest_first:
                    row = cache.row_of(m.parts[p], key)
                    if row is not None:
                        by_part.setdefault(p, []).append(row)
                        break
            got = []
            for p, rows in sorted(by_part.items()):
                try:
                    got.append(from_table(self._table(m, p).take(rows), m, namespace, m.parts[p].file, rows))
                except Unreadable:  # absent, as its scan dead-letters it
                    continue
            batch = RecordBatch.concat(got) if got else RecordBatch.empty(m.dimension, namespace)
            if not got:
                return _shaped(batch, m, namespace)
            order = {key_of(namespace, rid): i for i, rid in enumerate(ids)}
            batch = batch.take(sorted(range(len(batch)), key=lambda i: order[key_of(namespace, batch.ids[i])]))
            batch.namespace = namespace
            return batch

def _cursor(cursor: str | None) -> tuple[int, int]:
    if cursor is None:
        return 0, 0
    try:
        import orjson

        p, row = orjson.loads(cursor)
        return int(p), int(row)
    except (ValueError, TypeError):
        raise TerminalError(f"not a parquet scan cursor: {cursor[:80]!r}") from None


def _next(m: Manifest, p: int, end: int, stop: int) -> str | None:
    if end < m.parts[p].records:
        return f"[{p},{end}]"
    return f"[{p + 1},0]" if p + 1 < stop else None


def _shaped(batch: RecordBatch, m: Manifest, namespace: str) -> RecordBatch:
    """An empty batch with the directory's vector columns."""
    return RecordBatch([], np.zeros((0, m.dimension), np.float32), [], None, namespace,
                       named={k: np.zeros((0, int(v["dimension"])), np.float32) for k, v in m.extra_vectors.items()},
                       vector_name=m.vector_name)
