"""LanceDB connector (``lancedb`` 0.40, embedded): source and target.

URI: ``lancedb:///abs/dir?table=NAME[&pk=string|int]`` (pk: the id column of a table vmkit
creates: string, the default, or uint64 for whole-number ids).

Writes are ``merge_insert`` on ``id`` (update matched, insert the rest): idempotent. Each write
is a new table version, so a table vmkit created is compacted by ``optimize()`` in
``finish_load`` once the copy is done. LanceDB does not promise row order, so the scan cursor is
the largest id read: a page is the ``limit`` smallest ids above it, taken from the sorted ids of
the rest of the table (read once, id column only, and kept while the table version stands).
Partitions for the Dask executor are id ranges at quantiles of the table's ids, each read the
same way within its range.
Layout and why metadata is one JSON column: vmkit/connectors/lancedb/arrow.py.
"""

from __future__ import annotations

import os
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec, first_vector
from vmkit.connectors.lancedb.arrow import (
    ID_COL,
    META_COL,
    VECTOR_COL,
    from_arrow,
    schema_for,
    to_arrow,
    vector_columns,
)
from vmkit.connectors.lancedb.written_keys import WrittenKeys
from vmkit.connectors.partitions import WHOLE, Partition, sampled_ranges
from vmkit.connectors.shared import import_sdk
from vmkit.core.errors import ConfigError, InvalidData, PlanError, TerminalError, TransientError
from vmkit.core.records import RecordBatch, RecordId

_METRICS = ("cosine", "euclidean", "dot")
_IN_CHUNK = 20_000  # ids per IN (...) filter: one large filter reads faster than several small


def _sdk() -> Any:
    return import_sdk("lancedb", "lancedb", "lancedb")


def _literal(rid: RecordId) -> str:
    """An id as a SQL literal in a LanceDB filter."""
    return str(int(rid)) if isinstance(rid, int) else "'" + str(rid).replace("'", "''") + "'"


class LanceDBConnector(Connector):
    scheme = "lancedb"
    extra = "lancedb"
    capabilities = Capabilities(
        max_batch_records=10_000,
        max_batch_bytes=256 * 1024 * 1024,
        id_kinds=frozenset({"string", "uuid"}),
        metrics=frozenset(_METRICS),
        named_vectors=True,
        parallel_writes=False,  # concurrent merge_inserts conflict on commit
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        self.path = parts.netloc + parts.path
        self.table = self.params.get("table", "")
        self.pk = self.params.get("pk", "string")
        if not self.path or not self.table or self.pk not in ("string", "int"):
            raise ConfigError("lancedb URI: lancedb:///abs/dir?table=NAME[&pk=string|int]")
        if self.pk == "int":
            self.capabilities = Capabilities(**{**self.capabilities.__dict__, "id_kinds": frozenset({"uint"})})
        self._db: Any = None
        self._tbl: Any = None
        # (version, after, lower, upper, the sorted ids above ``after`` and below ``upper``)
        self._ids: tuple[Any, Any, Any, Any, list[Any]] | None = None
        self._layout_of: tuple[Any, Any, Any] | None = None  # (table, schema, layout)
        # Hashes of every id written, while this connector created the table and every write
        # since was an acknowledged append; None: unknown (ask the table).
        self._written: WrittenKeys | None = None

    def _open_table(self, must: bool = True) -> Any:
        if self._tbl is None:
            if self._db is None:
                self._db = _sdk().connect(os.path.abspath(self.path))
            try:
                self._tbl = self._db.open_table(self.table)
            except (ValueError, FileNotFoundError) as exc:
                if must:
                    raise TerminalError(f"lancedb table {self.table} does not exist") from exc
                return None
        return self._tbl

    def close(self) -> None:
        self._db = self._tbl = self._ids = self._written = None

    def _layout(self, tbl: Any) -> tuple[dict[str, str], str, dict[str, Any]]:
        """Vector column -> vector name, the first column, and the vmkit schema note (read once
        per opened table: ``Table.schema`` is a round trip to the engine)."""
        if self._layout_of is None or self._layout_of[0] is not tbl:
            self._layout_of = (tbl, tbl.schema, self._read_layout(tbl.schema))
        return self._layout_of[2]

    def _schema(self, tbl: Any) -> Any:
        self._layout(tbl)
        assert self._layout_of is not None
        return self._layout_of[1]

    def _read_layout(self, schema: Any) -> tuple[dict[str, str], str, dict[str, Any]]:
        note = orjson.loads((schema.metadata or {}).get(b"vmkit", b"{}"))
        cols = vector_columns(schema)
        if not cols:
            raise PlanError(f"lancedb table {self.table} has no vector column (a fixed-size list of floats)")
        if ID_COL not in schema.names:
            raise PlanError(f"lancedb table {self.table} has no '{ID_COL}' column")
        first = VECTOR_COL if VECTOR_COL in cols else min(cols)
        names = {c: (note.get("vector_name", "") if c == VECTOR_COL and note else c) for c in cols}
        if len(cols) > 1 and not names[first]:
            names[first] = first_vector([*cols]) if first != VECTOR_COL else "default"
        return names, first, note

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        tbl = self._open_table(must=False)
        if tbl is None:
            return None
        names, first, note = self._layout(tbl)
        dims = vector_columns(self._schema(tbl))
        metric = note.get("metric", "euclidean")  # LanceDB's own default distance is l2
        extra = {names[c]: {"dimension": d, "metric": metric} for c, d in dims.items() if c != first}
        return CollectionInfo(self.table, dims[first], metric, self.count(),
                              vector_name=names[first] if extra else "", extra_vectors=extra)

    def count(self) -> int:
        return int(self._call(lambda: self._open_table().count_rows()))

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self._scan_range(cursor, limit, None, None)

    def partitions(self, n: int) -> list[Partition] | None:
        """Id ranges cut at quantiles of the table's own ids (the id column alone, as a scan
        reads it): exact, so each holds about the same number of records."""
        tbl = self._open_table()
        got = self._call(lambda: tbl.search().select([ID_COL]).limit(None).to_arrow())
        ids = got.column(ID_COL).to_pylist()
        if n < 2 or len(set(ids)) < 2:
            return None
        return sampled_ranges(ids, n, len(ids))

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        return self._scan_range(cursor, limit, part.lower, part.upper)

    def _scan_range(self, cursor: str | None, limit: int, lower: RecordId | None,
                    upper: RecordId | None) -> tuple[RecordBatch, str | None]:
        """A page of the ids in ``[lower, upper)`` (None: open) above the cursor."""
        tbl = self._open_table()
        names, first, note = self._layout(tbl)
        after = None if cursor is None else _parse_cursor(cursor)
        version = self._call(lambda: tbl.version)
        if self._ids is None or self._ids[:4] != (version, after, lower, upper):
            where = " AND ".join(
                ([f"{ID_COL} > {_literal(after)}"] if after is not None else
                 [f"{ID_COL} >= {_literal(lower)}"] if lower is not None else [])
                + ([f"{ID_COL} < {_literal(upper)}"] if upper is not None else []))
            q = tbl.search().select([ID_COL]).limit(None)
            got = self._call(lambda: (q.where(where) if where else q).to_arrow())
            self._ids = (version, after, lower, upper, sorted(got.column(ID_COL).to_pylist()))
        ids = self._ids[4]
        end = max(1, limit)
        while end < len(ids) and ids[end] == ids[end - 1]:  # a table made elsewhere may repeat an id:
            end += 1  # its rows stay on one page, as the id range below reads them all
        page, rest = ids[:end], ids[end:]
        if not page:
            return RecordBatch.empty(), None
        rows = self._rows(tbl, f"{ID_COL} >= {_literal(page[0])} AND {ID_COL} <= {_literal(page[-1])}")
        rows = rows.sort_by(ID_COL)
        if rows.num_rows != len(page):
            raise TransientError(f"lancedb table {self.table} changed during the read")
        batch = from_arrow(rows, names, first, bool(note))
        self._ids = (version, page[-1], lower, upper, rest)
        if not rest:
            return batch, None
        return batch, orjson.dumps({"after": page[-1]}).decode()

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        want = [i for i in ids if isinstance(i, int if self.pk == "int" else str)] if not namespace else []
        tbl = self._open_table()
        names, first, note = self._layout(tbl)
        parts = [from_arrow(self._rows(tbl, f"{ID_COL} IN ({', '.join(map(_literal, want[i:i + _IN_CHUNK]))})"),
                            names, first, bool(note)) for i in range(0, len(want), _IN_CHUNK)]
        out = RecordBatch.concat(parts) if len(parts) != 1 else parts[0]
        out.rejected = [r for p in parts for r in p.rejected]  # concat keeps only records
        return out

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        tbl = self._open_table()
        names, _, note = self._layout(tbl)
        if not note or META_COL not in self._schema(tbl).names:
            raise TerminalError(f"lancedb table {self.table} was not made by vmkit: it writes only its own tables")
        columns = {name: col for col, name in names.items()}
        missing = set(batch.dense_vectors()) - set(columns)
        if missing:
            raise TerminalError(f"lancedb table {self.table} has no column for vectors {sorted(missing)}")
        for rid in batch.ids:
            if not isinstance(rid, int if self.pk == "int" else str) or rid == "":
                raise InvalidData(f"record {rid!r}: this lancedb table takes {self.pk} ids")
        last = {rid: i for i, rid in enumerate(batch.ids)}  # a repeated id: the last one wins
        if len(last) != len(batch):
            batch = batch.take(sorted(last.values()))
        data = to_arrow(batch, self._schema(tbl), columns)
        keys = np.fromiter((hash(i) for i in batch.ids), np.int64, len(batch))
        self._ids = None
        if self._any_present(tbl, batch.ids, keys):  # a rewrite (a resume, a retry): merge on id
            self._call(lambda: tbl.merge_insert(ID_COL).when_matched_update_all()
                       .when_not_matched_insert_all().execute(data))
            return
        written, self._written = self._written, None  # unknown until the append is acknowledged
        self._call(lambda: tbl.add(data))  # none of the ids is there: an append is the same write
        if written is not None:
            written.add(keys)
            self._written = written

    def _any_present(self, tbl: Any, ids: list[RecordId], keys: np.ndarray) -> bool:
        """Whether any of ``ids`` may be in the table. A table this connector created in this
        process and only appended to since: the hashes of the ids appended (a collision only
        costs a merge). Else one query over the id column. Writes to one table are serial
        (parallel_writes=False), so nothing lands between this and the write."""
        if self._written is not None:
            return self._written.any_of(keys)
        where = f"{ID_COL} IN ({', '.join(map(_literal, ids))})"
        got = self._call(lambda: tbl.search().where(where).select([ID_COL]).limit(1).to_arrow())
        return bool(got.num_rows)

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        tbl = self._open_table()
        want = list(ids) if not namespace else []
        self._written = None  # a deleted id may come back: ask the table from now on
        for i in range(0, len(want), _IN_CHUNK):
            self._call(lambda c=want[i:i + _IN_CHUNK]: tbl.delete(f"{ID_COL} IN ({', '.join(map(_literal, c))})"))
        self._ids = None

    def create(self, spec: TargetSpec) -> None:
        if spec.metric not in _METRICS or spec.sparse:
            raise TerminalError(f"lancedb cannot hold '{spec.metric}' ({', '.join(_METRICS)}; no sparse)")
        if self._open_table(must=False) is not None:
            raise TerminalError(f"lancedb table {self.table} already exists")
        spaces = {VECTOR_COL: spec.dimension}
        for name, (dim, metric) in spec.vector_spaces().items():
            if name == spec.vector_name:
                continue
            if name in (ID_COL, META_COL, VECTOR_COL) or metric != spec.metric:
                raise TerminalError(f"lancedb: vector '{name}' needs a column name other than id/vector/"
                                    f"metadata and the table's metric '{spec.metric}'")
            spaces[name] = dim
        note = {"vector_name": spec.vector_name, "metric": spec.metric, "created_by": "vmkit"}
        schema = schema_for(self.pk, spaces, note)
        self._tbl = self._call(lambda: self._db.create_table(self.table, schema=schema))
        self._written = WrittenKeys()

    def drop(self) -> None:
        """Drops only a table vmkit created (its schema note says so)."""
        tbl = self._open_table(must=False)
        if tbl is not None:
            if not (tbl.schema.metadata or {}).get(b"vmkit"):
                raise TerminalError(f"lancedb table {self.table} was not made by vmkit: not dropped")
            self._call(lambda: self._db.drop_table(self.table))
        self._tbl = self._ids = self._written = None

    def finish_load(self) -> None:
        """Compact the versions the load's merge_inserts left (tables vmkit made only)."""
        tbl = self._open_table(must=False)
        if tbl is not None and (tbl.schema.metadata or {}).get(b"vmkit"):
            self._call(tbl.optimize)

    # -- helpers ---------------------------------------------------------------------------
    def _rows(self, tbl: Any, where: str) -> Any:
        return self._call(lambda: tbl.search().where(where).limit(None).to_arrow())

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (TransientError, TerminalError, PlanError, ConfigError):
            raise
        except OSError as exc:
            raise TransientError(f"lancedb: {type(exc).__name__}: {str(exc)[:500]}") from exc
        except Exception as exc:
            raise TerminalError(f"lancedb: {type(exc).__name__}: {str(exc)[:500]}") from exc


def _parse_cursor(cursor: str) -> RecordId:
    try:
        after = orjson.loads(cursor)["after"]
        if isinstance(after, (int, str)) and not isinstance(after, bool):
            return after
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    raise TerminalError(f"not a lancedb scan cursor: {cursor[:80]!r}")
