"""pgvector connector (PostgreSQL through psycopg 3 and the ``pgvector`` package): source and target.

URI: ``postgresql://[user@]HOST:5432/DB?table=NAME[&schema=public]`` (``postgres://`` too).
The password comes from libpq's own sources (PGPASSWORD, ~/.pgpass), never the URI.
Options: ``metric=`` (else the vector index's operator class says it), ``metadata=COLUMN``
(the jsonb metadata column, default ``metadata``); for a table vmkit creates ``pk=text|bigint|uuid``
(default text), ``columns=jsonb|typed`` (one ``metadata jsonb`` column, or one typed column per
planned field) and ``index=hnsw|ivfflat|none`` (built once the load is done: ``finish_load``).

A record is one row: the primary key is the id; ``vector``/``halfvec`` columns are the dense
vectors (several: named vectors, by column name); a ``sparsevec`` column the sparse vector;
metadata is the jsonb column's object plus every other column, by column name. Reads are
keyset pages on the primary key (read.py); writes binary COPY into a temporary table, then
``INSERT ... ON CONFLICT DO UPDATE`` in one transaction (write.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, first_vector
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.connectors.pgvector import partitions, read
from vmkit.connectors.pgvector.pool import Pool, sdk
from vmkit.connectors.pgvector.schema import METRIC_OPS, PK_TYPES, Layout, read_layout
from vmkit.connectors.pgvector.write import PgvectorWrites
from vmkit.core.errors import ConfigError, TerminalError
from vmkit.core.records import RecordBatch, RecordId

_CHOICES = {"pk": tuple(PK_TYPES), "columns": ("jsonb", "typed"), "index": ("hnsw", "ivfflat", "none")}
_ID_KINDS = {"text": {"string", "uuid"}, "bigint": {"uint"}, "uuid": {"uuid"}}
_PK_OF = {"uint": "bigint", "string": "text", "uuid": "uuid"}


class PgvectorConnector(PgvectorWrites, Connector):
    scheme = "postgresql"
    extra = "pgvector"
    user_in_uri = True
    _base_caps = Capabilities(
        max_batch_records=2000,
        max_batch_bytes=32 * 1024 * 1024,
        id_kinds=frozenset({"string", "uuid"}),
        metrics=frozenset(METRIC_OPS),
        sparse=True,
        named_vectors=True,
        namespaces=False,
        wire_bytes_per_float=4,  # binary COPY
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        self.table = self.params.get("table", "")
        self.schema = self.params.get("schema", "public")
        self.dbname = unquote(parts.path.lstrip("/"))
        if not self.table or not self.dbname:
            raise ConfigError("postgresql URI needs a database and a table: "
                              "postgresql://[user@]host:5432/DB?table=NAME")
        for name, allowed in _CHOICES.items():
            if self.params.get(name, allowed[0]) not in allowed:
                raise ConfigError(f"postgresql:// option {name} must be one of {', '.join(allowed)}")
        self.metric = self.params.get("metric", "")
        if self.metric and self.metric not in METRIC_OPS:
            raise ConfigError(f"postgresql:// option metric must be one of {', '.join(sorted(METRIC_OPS))}")
        self.meta_column = self.params.get("metadata", "metadata")
        self.collection = self.table  # what the planner names the target after
        self._pool = Pool(sdk().conninfo.make_conninfo(
            "", host=parts.hostname or None, port=parts.port or None, dbname=self.dbname,
            user=unquote(parts.username) if parts.username else None, application_name="vmkit",
            options="-c TimeZone=UTC", connect_timeout=self.params.get("connect_timeout", "20"),
            sslmode=self.params.get("sslmode") or None))
        self._layout: Layout | None = None
        self._data_dims: dict[str, int] = {}  # vector columns without a declared dimension
        self._caps: Capabilities | None = None
        self._staged_writes = 0  # PgvectorWrites._write

    @property
    def qualified(self) -> Any:
        sql = sdk().sql
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))

    @property  # type: ignore[override]
    def capabilities(self) -> Capabilities:
        """As the existing table allows (its key type, typed columns), else as the URI asks."""
        if self._caps is None:
            layout = self.layout()
            pk = _PK_OF[_kind(layout)] if layout else self.params.get("pk", "text")
            typed = layout.meta_json is None if layout else self.params.get("columns") == "typed"
            reserved = ({c.name for c in layout.columns if c.name not in layout.typed} if layout
                        else {"id", "embedding", "sparse", "metadata"})
            metrics = set(METRIC_OPS) - ({"manhattan"} if self.params.get("index") == "ivfflat" else set())
            self._caps = replace(self._base_caps, id_kinds=frozenset(_ID_KINDS[pk]), metrics=frozenset(metrics),
                                 metadata_null=not typed, reserved_fields=frozenset(reserved) if typed else frozenset(),
                                 vector_names_reserved=typed)  # named vectors are columns too
        return self._caps

    @capabilities.setter
    def capabilities(self, caps: Capabilities) -> None:
        self._caps = caps

    def layout(self, fresh: bool = False) -> Layout | None:
        if self._layout is None or fresh:
            with self._pool.conn("reading the table's columns") as conn:
                self._layout = read_layout(conn, self.schema, self.table, self.metric, self.meta_column)
            self._caps = None
        return self._layout

    def _need(self) -> Layout:
        layout = self.layout()
        if layout is None:
            raise TerminalError(f"table {self.schema}.{self.table} does not exist")
        return layout

    def close(self) -> None:
        self._pool.reset()

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        layout = self.layout(fresh=True)
        if layout is None:
            return None
        names = list(layout.dense)
        first = first_vector(names) if len(names) > 1 else names[0]
        dims = self._dims(layout)
        findings = [{"field": f"vector.{n}", "message": f"column {n!r} declares no dimension; {dims[n]} "
                     "taken from its first row, rows of another dimension are rejected",
                     "policy": "rejected into the dead-letter table"} for n in names if not layout.dims[n]]
        findings += [{"field": f"vector.{n}", "message": f"halfvec column {n!r}",
                      "policy": "widened to float32 exactly"} for n in names if layout.dense[n].typname == "halfvec"]
        return CollectionInfo(
            name=self.table, dimension=dims[first], metric=layout.metrics[first], count=self.count(),
            sparse=layout.sparse is not None, vector_name=first if len(names) > 1 else "",
            extra_vectors={n: {"dimension": dims[n], "metric": layout.metrics[n]} for n in names if n != first},
            findings=findings)

    def _dims(self, layout: Layout) -> dict[str, int]:
        """Declared dimensions; a column without one: the first row's (0 for an empty table)."""
        sql = sdk().sql
        out = dict(layout.dims)
        for name, dim in layout.dims.items():
            if not dim:
                if name not in self._data_dims:
                    q = sql.SQL("SELECT vector_dims({c}) FROM {t} WHERE {c} IS NOT NULL ORDER BY {k} LIMIT 1").format(
                        c=sql.Identifier(name), t=self.qualified, k=sql.Identifier(layout.pk.name))
                    with self._pool.conn("reading a vector's dimension") as conn:
                        row = conn.execute(q).fetchone()
                    if row is None:
                        continue
                    self._data_dims[name] = int(row[0])
                out[name] = self._data_dims[name]
        return out

    def count(self) -> int:
        sql = sdk().sql
        with self._pool.conn("counting rows") as conn:
            return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.qualified)).fetchone()[0])

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        layout = self._need()
        after = None
        if cursor is not None:
            try:
                after = orjson.loads(cursor)["after"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise TerminalError(f"not a postgresql scan cursor: {cursor[:80]!r}") from None
        limit = max(1, limit)
        q = read.select_sql(sdk().sql, self.qualified, layout, "after" if cursor is not None else "")
        args = (after, limit) if cursor is not None else (limit,)
        with self._pool.conn("reading a page") as conn:
            rows = conn.cursor(binary=True).execute(q, args).fetchall()
        batch = read.to_batch(layout, rows, self._dims(layout))
        if len(rows) < limit:
            return batch, None
        last = read.to_id(layout, rows[-1][0])
        return batch, orjson.dumps({"after": last}).decode()

    def partitions(self, n: int) -> list[Partition] | None:
        return partitions.key_ranges(self, n)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self.scan(cursor, limit) if part.key == WHOLE else partitions.scan_range(self, part, cursor, limit)

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        layout = self._need()
        keys = _keys(layout, ids) if not namespace else []
        if not keys:
            return read.to_batch(layout, [], self._dims(layout))
        q = read.select_sql(sdk().sql, self.qualified, layout, "ids")
        with self._pool.conn("fetching records") as conn:
            rows = conn.cursor(binary=True).execute(q, (keys,)).fetchall()
        return read.to_batch(layout, rows, self._dims(layout))

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        layout = self._need()
        keys = _keys(layout, ids) if not namespace else []
        if keys:
            sql = sdk().sql
            q = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::{}[])").format(
                self.qualified, sql.Identifier(layout.pk.name), sql.Identifier(layout.pk.typname))
            with self._pool.conn("deleting records") as conn:
                conn.execute(q, (keys,))

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """``n`` rows drawn by the server over the whole table (seeded, so repeatable)."""
        layout = self._need()
        sql = sdk().sql
        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in layout.columns)
        q = sql.SQL("SELECT {} FROM {} ORDER BY random() LIMIT %s").format(cols, self.qualified)
        with self._pool.conn("sampling") as conn, conn.transaction():
            conn.execute("SELECT setseed(%s)", ((seed % 1000) / 1000.0,))
            rows = conn.cursor(binary=True).execute(q, (max(1, n),)).fetchall()
        return [read.to_batch(layout, rows, self._dims(layout))]


def _kind(layout: Layout) -> str:
    from vmkit.connectors.pgvector.schema import PK_KINDS

    return PK_KINDS[layout.pk.typname]


def _keys(layout: Layout, ids: Sequence[RecordId]) -> list[Any]:
    """The ids this table's key can hold (others cannot be there)."""
    import uuid

    kind = _kind(layout)
    if kind == "uint":
        return [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and -2**63 <= i < 2**63]
    if kind == "string":
        return [i for i in ids if isinstance(i, str) and "\x00" not in i]
    out = []
    for i in ids:
        try:
            out.append(uuid.UUID(str(i)))
        except ValueError:
            continue
    return out


class PostgresConnector(PgvectorConnector):
    """The same under ``postgres://``."""

    scheme = "postgres"
