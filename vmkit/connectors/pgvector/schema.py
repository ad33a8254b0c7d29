"""What a pgvector table holds, read from the catalog: its primary key, vector columns (with
dimension and metric), the sparse column and the metadata columns; and the DDL of a table
vmkit creates. Every identifier goes through ``psycopg.sql.Identifier``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from vmkit.core.errors import PlanError

DENSE = ("vector", "halfvec")
# The index operator class says the metric (pgvector README, "Distances"): l2, ip (inner
# product: vmkit's dot), cosine, l1 (manhattan), for vector, halfvec and sparsevec alike.
_OPS_METRIC = {"l2": "euclidean", "ip": "dot", "cosine": "cosine", "l1": "manhattan"}
METRIC_OPS = {v: k for k, v in _OPS_METRIC.items()}
PK_KINDS = {"int2": "uint", "int4": "uint", "int8": "uint", "text": "string", "varchar": "string",
            "bpchar": "string", "uuid": "uuid"}
# Metadata column types vmkit reads (typname of the column or of an array's element).
SCALARS = {"bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "bpchar",
           "date", "timestamp", "timestamptz", "time", "json", "jsonb", "uuid", "name", "citext"}
# What a table vmkit creates gives each FIELD_KINDS kind. Floats go to numeric, not double
# precision: a field mixing ints and floats (the plan calls it "float") keeps each exact and of
# its own type there (vmkit.connectors.pgvector.values).
KIND_TYPES = {"bool": "boolean", "int": "bigint", "float": "numeric", "str": "text", "json": "jsonb"}
PK_TYPES = {"text": 'text COLLATE "C"', "bigint": "bigint", "uuid": "uuid"}
COMMENT_KEY = "vmkit"  # the table comment of a table vmkit created: {"vmkit": {...}}


@dataclass(frozen=True)
class Column:
    name: str
    typname: str  # of the column, or of the element for arrays
    array: bool = False
    typmod: int = -1
    category: str = ""  # pg_type.typcategory ("E": enum)


@dataclass
class Layout:
    """One table as vmkit sees it."""

    oid: int
    pk: Column
    pk_collate_c: bool  # keyset order bytewise with COLLATE "C" (see order_by in read.py)
    dense: dict[str, Column]  # vector columns in table order
    dims: dict[str, int]  # declared dimension (typmod), 0 when the column has none
    metrics: dict[str, str]  # from the index operator class, or the vmkit comment
    sparse: Column | None
    meta_json: str | None  # the jsonb column holding metadata, or None (typed columns)
    typed: dict[str, Column]  # metadata key -> column (typed mode, and extras beside jsonb)
    made_by_vmkit: dict[str, Any] = field(default_factory=dict)  # the table comment's "vmkit" object

    @property
    def columns(self) -> list[Column]:
        out = [self.pk, *self.dense.values()]
        if self.sparse is not None:
            out.append(self.sparse)
        if self.meta_json is not None:
            out.append(Column(self.meta_json, "jsonb"))
        return out + list(self.typed.values())


_COLUMNS = """
SELECT a.attname, COALESCE(e.typname, t.typname), e.oid IS NOT NULL, a.atttypmod,
       COALESCE(e.typcategory, t.typcategory), coll.collisdeterministic, coll.collname
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON t.typcategory = 'A' AND e.oid = t.typelem
LEFT JOIN pg_collation coll ON coll.oid = a.attcollation
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
_PK = """
SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s AND i.indisprimary"""
_OPCLASSES = """
SELECT a.attname, opc.opcname FROM pg_index i
JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[]) AS k(attnum, opclass) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
JOIN pg_opclass opc ON opc.oid = k.opclass WHERE i.indrelid = %s"""
_TABLE = """
SELECT c.oid, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')"""


def read_layout(conn: Any, schema: str, table: str, metric: str, metadata: str) -> Layout | None:
    """The table's layout, None if it does not exist; PlanError naming the table or column
    for what vmkit cannot read (no or a composite primary key, an unknown column type)."""
    row = conn.execute(_TABLE, (schema, table)).fetchone()
    if row is None:
        return None
    oid, comment = row
    made = _vmkit_comment(comment)
    where = f"table {schema}.{table}"
    pk_names = [r[0] for r in conn.execute(_PK, (oid,)).fetchall()]
    if len(pk_names) != 1:
        what = "no primary key" if not pk_names else f"a composite primary key ({', '.join(sorted(pk_names))})"
        raise PlanError(f"{where} has {what}: vmkit reads and writes by one orderable primary key column")
    cols, deterministic, collation = {}, {}, {}
    for name, typname, is_array, typmod, category, det, collname in conn.execute(_COLUMNS, (oid,)).fetchall():
        cols[name] = Column(name, typname, bool(is_array), int(typmod), category)
        deterministic[name], collation[name] = det, collname
    pk = cols.pop(pk_names[0])
    if pk.array or pk.typname not in PK_KINDS:
        raise PlanError(f"{where}: primary key column {pk.name!r} is of type {pk.typname}; vmkit takes "
                        "bigint, integer, smallint, text, varchar or uuid keys")
    opclass = {name: ops for name, ops in conn.execute(_OPCLASSES, (oid,)).fetchall()}
    dense = {n: c for n, c in cols.items() if c.typname in DENSE and not c.array}
    sparse = [c for c in cols.values() if c.typname == "sparsevec" and not c.array]
    if not dense:
        raise PlanError(f"{where} has no vector or halfvec column")
    if len(sparse) > 1:
        raise PlanError(f"{where} has {len(sparse)} sparsevec columns; vmkit carries one sparse vector per record")
    rest = {n: c for n, c in cols.items() if n not in dense and (not sparse or n != sparse[0].name)}
    meta_json = metadata if metadata in rest and rest[metadata].typname == "jsonb" and not rest[metadata].array else None
    if metadata in rest and meta_json is None:
        raise PlanError(f"{where}: metadata column {metadata!r} is not jsonb")
    typed = {n: c for n, c in rest.items() if n != meta_json}
    for c in typed.values():
        if c.typname not in SCALARS and c.category != "E":
            raise PlanError(f"{where}: column {c.name!r} has type {c.typname}{'[]' if c.array else ''}, "
                            "which vmkit cannot carry as metadata (cast it to text, or move it to another table)")
    metrics = {}
    for name in dense:
        found = metric or _ops_metric(opclass.get(name)) or made.get("metrics", {}).get(name)
        if not found:
            raise PlanError(f"{where}: vector column {name!r} has no index whose operator class says its "
                            "metric; pass it in the URI: ?metric=cosine|euclidean|dot|manhattan")
        metrics[name] = found
    return Layout(oid, pk, pk_collate_c=collation[pk.name] == "C" or deterministic[pk.name] is False,
                  dense=dense, dims={n: max(c.typmod, 0) for n, c in dense.items()}, metrics=metrics,
                  sparse=sparse[0] if sparse else None, meta_json=meta_json, typed=typed, made_by_vmkit=made)


def _ops_metric(opcname: str | None) -> str | None:
    if not opcname or not opcname.endswith("_ops"):
        return None
    return _OPS_METRIC.get(opcname.removesuffix("_ops").rpartition("_")[2])


def _vmkit_comment(comment: str | None) -> dict[str, Any]:
    if not comment:
        return {}
    try:
        made = orjson.loads(comment).get(COMMENT_KEY)
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return made if isinstance(made, dict) else {}


def comment_text(made: dict[str, Any]) -> str:
    return orjson.dumps({COMMENT_KEY: made}, option=orjson.OPT_SORT_KEYS).decode()


def create_sql(sql: Any, qualified: Any, pk_type: str, vectors: dict[str, tuple[int, str]],
               sparse: str | None, meta: dict[str, str] | None, made: dict[str, Any]) -> list[Any]:
    """CREATE TABLE and its comment. ``meta`` is key -> SQL type for typed columns, None for one
    ``metadata jsonb`` column."""
    cols = [sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier("id"), sql.SQL(PK_TYPES[pk_type]))]
    cols += [sql.SQL("{} vector({}) NOT NULL").format(sql.Identifier(n), sql.Literal(d))
             for n, (d, _) in vectors.items()]
    if sparse:
        cols.append(sql.SQL("{} sparsevec").format(sql.Identifier(sparse)))
    if meta is None:
        cols.append(sql.SQL("{} jsonb NOT NULL DEFAULT '{{}}'").format(sql.Identifier("metadata")))
    else:
        cols += [sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(t)) for k, t in meta.items()]
    return [sql.SQL("CREATE TABLE {} ({})").format(qualified, sql.SQL(", ").join(cols)),
            sql.SQL("COMMENT ON TABLE {} IS {}").format(qualified, sql.Literal(comment_text(made)))]
