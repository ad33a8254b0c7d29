"""Reading a Weaviate collection export: ``parquet:///abs/dir?layout=weaviate[&collection=C][&metric=M]``.

The layout is Weaviate's own (v1.37 preview, docs.weaviate.io/deploy/configuration/export), as its
server writes it (weaviate/weaviate ``usecases/export``):

- ``parquet_writer.go`` ``ParquetRow``: ``id`` STRING (the uuid), ``creation_time`` and
  ``update_time`` INT64 (unix ms), ``vector`` BINARY (the legacy vector, little-endian float32,
  NULL without one), ``named_vectors`` BINARY (JSON ``{"name": [floats]}``), ``multi_vectors``
  BINARY (JSON ``{"name": [[floats]]}``), ``properties`` BINARY (the object's JSON as stored);
- ``parallel_scan.go``: one file per key range of a shard, ``{class}_{shard}_{range:04d}.parquet``,
  with the class under the file's key-value metadata ``collection`` and, in a multi-tenant
  class, the tenant (the shard) under ``tenant``;
- ``scheduler.go`` / ``types.go`` ``ExportMetadata``: ``export_metadata.json`` beside the files,
  with ``status`` and, per class and shard, ``shardStatus`` ``{status, objectsExported}``.

Records come out as the Weaviate connector reads them from a live server: uuid ids, tenants as
namespaces, the legacy vector as ``default``, named vectors by name, properties as metadata with
nulls dropped; multi-vector spaces are skipped and the plan names them. The export does not
carry the schema, so the metric is ``?metric=`` (Weaviate distance or vmkit name), else cosine
(Weaviate's default) with a plan warning. Count reconciliation uses the export's own
``objectsExported``: files that hold other row counts, an export not ``SUCCESS`` or a failed
shard are plan errors naming the file or shard. Read-only: a Weaviate import reads nothing here.

Scan cursor: ``[file index, row]`` over the files in (tenant, name) order; rows are read by row
group, so memory is one row group.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np
import orjson

from vmkit.connectors.base import (
    DEFAULT_VECTOR,
    METRICS,
    Capabilities,
    CollectionInfo,
    Connector,
    ReadOnly,
    first_vector,
)
from vmkit.core.errors import ConfigError, PlanError, TerminalError
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, RecordId, Rejection

from .layout import pa
from .weaviate_files import ExportFile, ExportListing, list_export

log = logging.getLogger(__name__)

# Weaviate distance names (its schema's vectorIndexConfig.distance) -> vmkit's metric names.
_DISTANCES = {"cosine": "cosine", "dot": "dot", "l2-squared": "euclidean", "manhattan": "manhattan"}
_COLUMNS = ("id", "vector", "named_vectors", "multi_vectors", "properties")
_SPACE_ROWS = 256  # rows read per file, from a few files, to find the vector spaces and dimensions


class WeaviateExport(ReadOnly, Connector):
    """A Weaviate collection export as a read-only source (see the module docstring)."""

    scheme = "parquet"
    extra = "parquet"
    capabilities = Capabilities(id_kinds=frozenset({"uuid"}), named_vectors=True, namespaces=True,
                                metadata_null=False, parallel_writes=False)

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        path = parts.netloc + parts.path
        if not path.startswith("/"):
            raise ConfigError("parquet:// needs an absolute directory: parquet:///abs/dir?layout=weaviate")
        self.root = Path(path)
        metric = self.params.get("metric")
        if metric is not None and metric not in METRICS and metric not in _DISTANCES:
            raise ConfigError(f"parquet:// layout=weaviate metric must be one of "
                              f"{sorted(set(METRICS) | set(_DISTANCES))}, got {metric!r}")
        self.metric = _DISTANCES.get(metric or "cosine", metric or "cosine")
        self._listing: ExportListing | None = None
        self._spaces: tuple[dict[str, int], dict[str, str], str] | None = None
        self._group: tuple[int, int, Any] | None = None  # (file, row group, table) last read
        self._ids: dict[str, dict[str, tuple[int, int]]] = {}  # tenant -> id -> (file, row)

    # -- the export ------------------------------------------------------------------------
    def _load(self) -> list[ExportFile]:
        if self._listing is None:
            self._listing = list_export(self.root, self.params.get("collection"))
        return self._listing.files

    def _space_facts(self) -> tuple[dict[str, int], dict[str, str], str]:
        """(dense space -> dimension, skipped multi-vector space -> why, first space) from the
        first rows of a few files."""
        if self._spaces is None:
            dims: dict[str, int] = {}
            multi: set[str] = set()
            for f in [f for f in self._load() if f.rows][:4]:
                try:
                    t = self._row_group(self._load().index(f), 0).slice(0, _SPACE_ROWS)
                except (pa().ArrowException, OSError) as exc:
                    raise PlanError(f"Weaviate export file {f.path} cannot be read: {exc}") from None
                for raw in t.column("vector").to_pylist():
                    if raw:
                        dims.setdefault(DEFAULT_VECTOR, len(raw) // 4)
                for raw in t.column("named_vectors").to_pylist():  # a row not JSON: its scan dead-letters it
                    for name, v in _json_object(raw).items():
                        dims.setdefault(name, len(v))
                for raw in t.column("multi_vectors").to_pylist():
                    multi.update(_json_object(raw))
            skipped = {n: "a multi-vector (ColBERT-style) space: vmkit does not carry multi-vectors"
                       for n in sorted(multi - set(dims))}
            self._spaces = (dims, skipped, first_vector(list(dims)) if dims else DEFAULT_VECTOR)
        return self._spaces

    def _row_group(self, f: int, g: int) -> Any:
        if self._group is None or self._group[:2] != (f, g):
            import pyarrow.parquet as pq

            with pq.ParquetFile(self._load()[f].path) as pf:
                self._group = (f, g, pf.read_row_group(g, columns=list(_COLUMNS)))
        return self._group[2]

    # -- contract: reading -----------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        files = self._load()
        dims, skipped, first = self._space_facts()
        counts: dict[str, int] = {}
        for f in files:
            counts[f.tenant] = counts.get(f.tenant, 0) + f.rows
        findings: list[dict[str, Any]] = [] if "metric" in self.params else [{
            "field": "vector", "message": "a Weaviate export does not record the collection's distance",
            "policy": f"assumed {self.metric} (Weaviate's default); set ?metric= on the source URI if "
                      "the collection used another"}]
        skipped_shards = self._listing.skipped if self._listing else {}
        if skipped_shards:
            listed = ", ".join(f"{s} ({why})" for s, why in sorted(skipped_shards.items())[:20])
            findings.append({"field": "namespace", "count": len(skipped_shards),
                             "message": f"{len(skipped_shards)} shards or tenants are not in the export: {listed}",
                             "policy": "not migrated; export them again once active to move them too"})
        multi_tenant = any(f.tenant for f in files)
        others = sorted(n for n in dims if n != first)
        return CollectionInfo(
            self._listing.collection if self._listing else "", dims.get(first, 0), self.metric, sum(counts.values()),
            {t: c for t, c in counts.items() if c} if multi_tenant else {},
            vector_name=first if others else "",
            extra_vectors={n: {"dimension": dims[n], "metric": self.metric} for n in others},
            skipped_vectors=skipped, findings=findings)

    def count(self) -> int:
        return sum(f.rows for f in self._load())

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        files = self._load()
        f, row = _cursor(cursor, len(files))
        while f < len(files) and row >= files[f].rows:
            f, row = f + 1, 0
        if f >= len(files):
            return self._empty(""), None
        g = int(np.searchsorted(files[f].starts, row, side="right")) - 1
        end = min(row + max(1, limit), files[f].starts[g + 1])
        batch = self._rows(f, g, row, end)
        nxt = f"[{f},{end}]" if end < files[f].rows else (f"[{f + 1},0]" if f + 1 < len(files) else None)
        return batch, nxt

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` records from up to 8 row groups drawn by size."""
        rng = random.Random(seed)
        groups = [(f, g, ef.starts[g + 1] - ef.starts[g]) for f, ef in enumerate(self._load())
                  for g in range(len(ef.starts) - 1) if ef.starts[g + 1] > ef.starts[g]]
        chosen = sorted(set(rng.choices(groups, weights=[s for *_, s in groups], k=min(8, len(groups))))) if groups else []
        out = []
        for f, g, size in chosen:
            start = self._load()[f].starts[g]
            rows = sorted(rng.sample(range(size), min(size, max(1, n // len(chosen)))))
            out.append(self._picked(f, g, start, rows))
        return out

    def _picked(self, f: int, g: int, start: int, rows: list[int]) -> RecordBatch:
        table = self._row_group(f, g).take(rows)
        return self._to_batch(table, f, [start + r for r in rows])

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        where = self._id_index(namespace)
        hits = [where[str(i)] for i in ids if str(i) in where]
        got = []
        for f, row in hits:
            ef = self._load()[f]
            g = int(np.searchsorted(ef.starts, row, side="right")) - 1
            got.append(self._picked(f, g, ef.starts[g], [row - ef.starts[g]]))
        if not got:
            return self._empty(namespace)
        batch = RecordBatch.concat(got)
        batch.namespace = namespace
        return batch

    def _id_index(self, tenant: str) -> dict[str, tuple[int, int]]:
        """id -> (file, row) of one tenant, from the id columns only, built on first use."""
        if tenant not in self._ids:
            import pyarrow.parquet as pq

            index: dict[str, tuple[int, int]] = {}
            for f, ef in enumerate(self._load()):
                if ef.tenant == tenant:
                    ids = pq.read_table(ef.path, columns=["id"]).column("id").to_pylist()
                    index.update((rid, (f, row)) for row, rid in enumerate(ids))
            self._ids[tenant] = index
        return self._ids[tenant]

    def _rows(self, f: int, g: int, start: int, end: int) -> RecordBatch:
        first = self._load()[f].starts[g]
        try:
            table = self._row_group(f, g).slice(start - first, end - start)
        except (pa().ArrowException, OSError) as exc:  # a damaged page: its rows say where they were
            ef = self._load()[f]
            log.warning("Weaviate export file %s: %s; its rows are dead-lettered", ef.path, exc)
            batch = self._empty(ef.tenant)
            batch.rejected.extend(Rejection(f"{ef.path.name}#{r}", f"Weaviate export file {ef.path.name} row {r}: "
                                            f"unreadable: {exc}", SOURCE_UNREADABLE, ef.tenant)
                                  for r in range(start, end))
            return batch
        return self._to_batch(table, f, list(range(start, end)))

    def _to_batch(self, table: Any, f: int, rows: list[int]) -> RecordBatch:
        """Rows -> records; a row with a vector missing or of another length, or properties that
        are not a JSON object, is rejected naming the file, row and column."""
        ef = self._load()[f]
        dims, _, first = self._space_facts()
        spaces = [first, *sorted(n for n in dims if n != first)]
        ids = table.column("id").to_pylist()
        legacy = table.column("vector").to_pylist()
        named = table.column("named_vectors").to_pylist()
        props = table.column("properties").to_pylist()
        keep, metas, vecs = [], [], {n: [] for n in spaces}  # type: ignore[var-annotated]
        rejected = []
        for i, rid in enumerate(ids):
            where = f"Weaviate export file {ef.path.name} row {rows[i]}"
            try:
                got = orjson.loads(named[i]) if named[i] else {}
                if legacy[i]:
                    got[DEFAULT_VECTOR] = np.frombuffer(legacy[i], "<f4") if len(legacy[i]) % 4 == 0 else []
                meta = orjson.loads(props[i]) if props[i] else {}
            except orjson.JSONDecodeError as exc:
                rejected.append(Rejection(rid or f"{ef.path.name}#{rows[i]}", f"{where}: not JSON: {exc}",
                                          SOURCE_UNREADABLE, ef.tenant))
                continue
            problem = next((f"{where}: no vector in '{n}'" if n not in got else
                            f"{where}: vector '{n}' has {len(got[n])} values, expected {dims[n]}"
                            for n in spaces if n not in got or len(got[n]) != dims[n]), "")
            if not rid or problem or not isinstance(meta, dict):
                why = problem or (f"{where}: no id" if not rid else f"{where}: properties are not a JSON object")
                field = "vector" if problem else ("metadata" if rid else SOURCE_UNREADABLE)
                rejected.append(Rejection(rid or f"{ef.path.name}#{rows[i]}", why, field, ef.tenant))
                continue
            keep.append(rid)
            metas.append(_without_nulls(meta))
            for n in spaces:
                vecs[n].append(got[n])
        arrays = {n: np.asarray(v, np.float32).reshape(len(keep), dims[n]) if dims else np.zeros((len(keep), 0), np.float32)
                  for n, v in vecs.items()}
        batch = RecordBatch(keep, arrays[first], metas, None, ef.tenant,
                            named={n: a for n, a in arrays.items() if n != first},
                            vector_name=first if len(spaces) > 1 else "")
        batch.rejected.extend(rejected)
        return batch

    def _empty(self, namespace: str) -> RecordBatch:
        dims, _, first = self._space_facts()
        others = sorted(n for n in dims if n != first)
        return RecordBatch([], np.zeros((0, dims.get(first, 0)), np.float32), [], None, namespace,
                           named={n: np.zeros((0, dims[n]), np.float32) for n in others},
                           vector_name=first if others else "")

    # -- contract: writing (none) ----------------------------------------------------------
    def read_only_error(self) -> Exception:
        return ConfigError("parquet:// layout=weaviate reads a Weaviate collection export and is read-only; "
                           "to load Weaviate, migrate to weaviate://HOST:PORT/Collection")

    def close(self) -> None:
        self._group = None
        self._ids = {}


def _json_object(raw: bytes | None) -> dict[str, Any]:
    try:
        got = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return got if isinstance(got, dict) else {}


def _cursor(cursor: str | None, files: int) -> tuple[int, int]:
    if cursor is None:
        return 0, 0
    try:
        f, row = orjson.loads(cursor)
        if not 0 <= int(f) <= files:
            raise ValueError
        return int(f), int(row)
    except (ValueError, TypeError):
        raise TerminalError(f"not a Weaviate export scan cursor: {cursor[:80]!r}") from None


def _without_nulls(v: Any) -> Any:
    """Properties as the Weaviate connector reads them: Weaviate does not tell a null from a
    missing property, so nulls inside objects are dropped."""
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_nulls(x) for x in v]
    return v
