"""The writing half of PgvectorConnector: upsert, create, drop, and the index built once the
load is done (see connector.py for the URI and its options)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vmkit.connectors.base import Capabilities, TargetSpec
from vmkit.connectors.batching import split_batch
from vmkit.connectors.pgvector import wire
from vmkit.connectors.pgvector.schema import (
    KIND_TYPES,
    METRIC_OPS,
    Column,
    Layout,
    comment_text,
    create_sql,
)
from vmkit.connectors.pgvector.values import INT64, as_is, json_text, write_value
from vmkit.core.errors import InvalidData, TerminalError
from vmkit.core.records import RecordBatch, RecordId

if TYPE_CHECKING:
    from vmkit.connectors.pgvector.pool import Pool

log = logging.getLogger("vmkit.connectors.pgvector")

MAX_DIM, MAX_INDEX_DIM = 16_000, 2_000  # pgvector README: vector storage, HNSW/IVFFlat index
SPARSE_MAX_DIM = 1_000_000_000  # pgvector SPARSEVEC_MAX_DIM
_STAGED_AFTER_CONFLICT = 8  # writes through the stage table after a key conflict, then COPY is tried again
_TEXTLIKE = {"text", "varchar", "bpchar", "name", "citext"}  # one binary format: text's


def _copy_type(col: Column) -> str:
    base = "text" if col.typname in _TEXTLIKE or col.category == "E" else col.typname
    return f"{base}[]" if col.array else base


class PgvectorWrites:
    """The writing half of PgvectorConnector."""

    if TYPE_CHECKING:  # provided by PgvectorConnector (connector.py)
        table: str
        params: dict[str, str]
        _pool: Pool
        _layout: Layout | None
        _caps: Capabilities | None
        _staged_writes: int  # > 0: the next writes upsert through the stage table

        @property
        def qualified(self) -> Any: ...
        @property
        def capabilities(self) -> Capabilities: ...
        def layout(self, fresh: bool = False) -> Layout | None: ...
        def _need(self) -> Layout: ...

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        layout = self._with_columns_for(self._need(), batch)
        for part in split_batch(batch, self.capabilities):
            self._write(layout, part)

    def _with_columns_for(self, layout: Layout, batch: RecordBatch) -> Layout:
        """Typed tables: a jsonb column for each key that has none yet (ALTER TABLE ... ADD
        COLUMN IF NOT EXISTS: safe when parallel writers race)."""
        if layout.meta_json is not None:
            return layout
        fixed = {c.name for c in layout.columns if c.name not in layout.typed}
        missing: dict[str, RecordId] = {}
        for rid, meta in zip(batch.ids, batch.metadata):
            for key in meta:
                if key in fixed:
                    raise InvalidData(f"record {rid!r} [metadata.{key}]: the table's column {key!r} is "
                                      "not metadata (id, vector or sparse)")
                if key not in layout.typed and key not in missing:
                    if len(key.encode()) > 63 or "\x00" in key:
                        raise InvalidData(f"record {rid!r} [metadata.{key[:70]}]: not a PostgreSQL column "
                                          "name (at most 63 bytes, no NUL)")
                    missing[key] = rid
        if not missing:
            return layout
        sql = _sql()
        with self._pool.conn("adding metadata columns") as conn:
            for key in missing:
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} jsonb").format(
                    self.qualified, sql.Identifier(key)))
        log.info("table %s: added jsonb columns for new metadata keys %s", self.table, sorted(missing))
        return self.layout(fresh=True)  # type: ignore[return-value]

    def _write(self, layout: Layout, batch: RecordBatch) -> None:
        """COPY straight into the table while no key is there yet (a first load: as fast as a
        hand-written COPY); once a key conflicts (a resumed or repeated load), the same rows go
        through the stage table and ``ON CONFLICT DO UPDATE`` for the next ``_STAGED_AFTER_CONFLICT``
        writes. Either way one transaction: all of the batch or none of it."""
        psycopg, sql = _psycopg(), _sql()
        columns = layout.columns
        rows = self._rows(layout, batch)
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        pk = sql.Identifier(layout.pk.name)
        sets = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name)) for c in columns[1:])
        types = [_copy_type(c) for c in columns]
        with self._pool.conn("writing records") as conn:
            if self._staged_writes <= 0:
                try:
                    with conn.transaction():
                        _copy(conn, sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                            self.qualified, names), types, rows)
                    return
                except psycopg.errors.UniqueViolation:
                    self._staged_writes = _STAGED_AFTER_CONFLICT  # some keys are there: upsert
            self._staged_writes -= 1
            with conn.transaction():
                conn.execute(sql.SQL("CREATE TEMP TABLE _vmkit_stage (LIKE {}) ON COMMIT DROP").format(self.qualified))
                _copy(conn, sql.SQL("COPY _vmkit_stage ({}) FROM STDIN (FORMAT BINARY)").format(names), types, rows)
                conn.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM _vmkit_stage "
                                     "ON CONFLICT ({k}) DO UPDATE SET {s}").format(t=self.qualified, c=names, k=pk, s=sets))

    def _rows(self, layout: Layout, batch: RecordBatch) -> list[list[Any]]:
        """COPY rows in the order of ``layout.columns``, the last write of an id kept."""
        vectors = _vectors_by_column(layout, batch)
        keep = list({_key(layout, rid): i for i, rid in enumerate(batch.ids)}.items())
        dense: dict[str, list[Any]] = {}
        for name, arr in vectors.items():
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                raise InvalidData(f"record {batch.ids[int(np.argmax(bad))]!r} [vector.{name}]: NaN or Inf, "
                                  "which pgvector refuses")
            if layout.dense[name].typname == "halfvec":
                dense[name] = _halfvecs(arr, batch.ids, name)
            else:
                dense[name] = wire.vector_bytes(arr)  # type: ignore[assignment]
        sparse_dim = (layout.sparse.typmod if layout.sparse and layout.sparse.typmod > 0 else SPARSE_MAX_DIM)
        if batch.sparse is not None and any(s is not None for s in batch.sparse) and layout.sparse is None:
            raise TerminalError(f"table {self.table} has no sparsevec column for the records' sparse vectors")
        out = []
        for key, i in keep:
            rid, meta = batch.ids[i], batch.metadata[i]
            row: list[Any] = [key, *(dense[n][i] for n in layout.dense)]
            if layout.sparse is not None:
                sp = None if batch.sparse is None else batch.sparse[i]
                if sp is not None and len(sp.indices) and int(sp.indices[-1]) >= sparse_dim:
                    raise InvalidData(f"record {rid!r} [sparse]: index {int(sp.indices[-1])} is past the "
                                      f"sparsevec dimension {sparse_dim}")
                row.append(wire.sparse_value(sp, sparse_dim))
            if layout.meta_json is not None:
                rest = {k: v for k, v in meta.items() if k not in layout.typed} if layout.typed else meta
                from psycopg.types.json import Jsonb

                row.append(Jsonb(json_text(rest, rid, "metadata"), dumps=as_is))
            for name, col in layout.typed.items():
                row.append(write_value(col, meta.get(name), rid))
            out.append(row)
        return out

    def create(self, spec: TargetSpec) -> None:
        sql = _sql()
        pk, index = self.params.get("pk", "text"), self.params.get("index", "hnsw")
        spaces = spec.vector_spaces()
        vectors = {"embedding": spaces[""]} if list(spaces) == [""] else {n or "default": s for n, s in spaces.items()}
        for name, (dim, metric) in vectors.items():
            problem = (f"metric {metric!r} (pgvector has {', '.join(sorted(METRIC_OPS))})" if metric not in METRIC_OPS
                       else "manhattan with an IVFFlat index (HNSW has it)" if index == "ivfflat" and metric == "manhattan"
                       else f"{dim} dimensions (at most {MAX_DIM})" if not 0 < dim <= MAX_DIM
                       else f"{dim} dimensions with an index (at most {MAX_INDEX_DIM}: pass index=none)"
                       if index != "none" and dim > MAX_INDEX_DIM
                       else "a vector named like a fixed column" if name in ("id", "metadata", "sparse") else "")
            if problem:
                raise TerminalError(f"pgvector table {self.table} cannot be created for vector {name!r}: {problem}")
        fixed = {"id", "sparse", "metadata", *vectors}
        meta = (None if self.params.get("columns", "jsonb") == "jsonb"
                else {k: KIND_TYPES[kind] for k, kind in spec.fields.items() if k not in fixed})
        made = {"index": index, "metrics": {n: m for n, (_, m) in vectors.items()}, "pk": pk,
                "pending_index": index != "none"}
        with self._pool.conn("creating the vector extension") as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self._pool.reset()  # connections opened before the extension have no vector types
        with self._pool.conn("creating the table") as conn, conn.transaction():
            for statement in create_sql(sql, self.qualified, pk, vectors, "sparse" if spec.sparse else None, meta, made):
                conn.execute(statement)
        self._layout = self._caps = None

    def finish_load(self) -> None:
        """The index of a table vmkit created, built once after the bulk load (pgvector
        README: "create the index after loading your initial data"); the table comment says
        it is pending until then, so a load resumed in another process builds it too."""
        layout = self.layout(fresh=True)
        if layout is None or not layout.made_by_vmkit.get("pending_index"):
            return
        if layout.made_by_vmkit.get("index") not in ("hnsw", "ivfflat"):
            raise TerminalError(f"table {self.table}: its vmkit comment names no known index method")
        sql = _sql()
        made = dict(layout.made_by_vmkit)
        with self._pool.conn("building the vector index") as conn, conn.transaction():
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            rows = int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.qualified)).fetchone()[0])
            for name, col in layout.dense.items():
                ops = f"{col.typname}_{METRIC_OPS[layout.metrics[name]]}_ops"
                tag = hashlib.sha1(f"{self.table}\x00{name}".encode()).hexdigest()[:12]
                with_ = (sql.SQL(" WITH (lists = {})").format(sql.Literal(max(1, min(rows // 1000, 32768))))
                         if made["index"] == "ivfflat" else sql.SQL(""))
                conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({} {}){}").format(
                    sql.Identifier(f"vmkit_{tag}_{made['index']}"), self.qualified, sql.Identifier(made["index"]),
                    sql.Identifier(name), sql.Identifier(ops), with_))
            made["pending_index"] = False
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self.qualified, sql.Literal(comment_text(made))))
        log.info("table %s: %s index built over %d rows", self.table, made["index"], rows)
        self._layout = None

    def drop(self) -> None:
        """Drop the table, only if vmkit created it (its comment says so)."""
        layout = self.layout(fresh=True)
        if layout is None:
            return
        if not layout.made_by_vmkit:
            raise TerminalError(f"table {self.table} was not created by vmkit; drop it yourself if you mean to")
        with self._pool.conn("dropping the table") as conn:
            conn.execute(_sql().SQL("DROP TABLE IF EXISTS {}").format(self.qualified))
        self._layout = self._caps = None


def _copy(conn: Any, statement: Any, types: list[str], rows: list[list[Any]]) -> None:
    with conn.cursor().copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _psycopg() -> Any:
    from vmkit.connectors.pgvector.pool import sdk

    return sdk()


def _sql() -> Any:
    from vmkit.connectors.pgvector.pool import sdk

    return sdk().sql


def _vectors_by_column(layout: Layout, batch: RecordBatch) -> dict[str, np.ndarray]:
    """The batch's dense vectors by table column; a mismatch of the table is terminal."""
    names = list(layout.dense)
    given = batch.dense_vectors() if batch.named else {names[0] if len(names) == 1 else "": batch.vectors}
    if set(given) != set(names):
        raise TerminalError(f"records carry vectors {sorted(given)}, the table has vector columns {names}")
    for name, arr in given.items():
        want = layout.dims[name]
        if want and arr.shape[1] != want:
            raise TerminalError(f"records have {arr.shape[1]} dimensions in {name!r}, the table's column "
                                f"takes {want}")
    return given


def _key(layout: Layout, rid: RecordId) -> Any:
    kind = layout.pk.typname
    if kind in ("int2", "int4", "int8"):
        bound = {"int2": 2**15, "int4": 2**31, "int8": INT64}[kind]
        if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < bound:
            return rid
        raise InvalidData(f"record {rid!r} [id]: the key column {layout.pk.name!r} ({kind}) takes whole numbers "
                          f"from 0 to {bound - 1}")
    if kind == "uuid":
        try:
            return uuid.UUID(str(rid))
        except ValueError:
            raise InvalidData(f"record {rid!r} [id]: not a UUID, which the key column takes") from None
    if not isinstance(rid, str) or "\x00" in rid or not rid:
        raise InvalidData(f"record {rid!r} [id]: the key column {layout.pk.name!r} takes non-empty text without NUL")
    return rid


def _halfvecs(arr: np.ndarray, ids: Sequence[RecordId], name: str) -> list[Any]:
    """halfvec values; a vector float16 cannot hold exactly is refused (it would differ on read)."""
    from pgvector import HalfVector

    half = arr.astype(np.float16)
    inexact = ~(half.astype(np.float32) == arr).all(axis=1)
    if inexact.any():
        raise InvalidData(f"record {ids[int(np.argmax(inexact))]!r} [vector.{name}]: not exact as halfvec (float16)")
    return [HalfVector(row) for row in half]
