"""Rows of a pgvector table as RecordBatches, and the keyset queries that read them.

Keyset order: ``WHERE pk > last ORDER BY pk LIMIT n``, each page one short autocommit
statement, so nothing is held open between pages and a new process resumes from the last key.
Text keys compare in the column's own collation, which the primary key's index is built in:
another collation would sort the whole table for every page. Deterministic collations order
every two distinct strings (PostgreSQL breaks ties bytewise), so the order is total and
stable; tables vmkit creates use ``COLLATE "C"`` (bytewise). A nondeterministic collation can
call two distinct keys equal, so there the page order is ``COLLATE "C"`` (correct, slower).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from vmkit.connectors.base import first_vector
from vmkit.connectors.pgvector import wire
from vmkit.connectors.pgvector.schema import Layout
from vmkit.connectors.pgvector.values import read_value
from vmkit.core.records import RecordBatch, RecordId, Rejection, SparseVector


def select_sql(sql: Any, table: Any, layout: Layout, where: str) -> Any:
    """SELECT every column vmkit reads; ``where`` is "after" (keyset page), "ids" or "" (first page)."""
    cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in layout.columns)
    pk = sql.Identifier(layout.pk.name)
    key = sql.SQL('{} COLLATE "C"').format(pk) if layout.pk_collate_c else pk
    if where == "ids":
        return sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::{}[])").format(
            cols, table, pk, sql.Identifier(layout.pk.typname))
    cond = sql.SQL("WHERE {} > %s").format(key) if where == "after" else sql.SQL("")
    return sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT %s").format(cols, table, cond, key)


def to_id(layout: Layout, value: Any) -> RecordId:
    return str(value) if isinstance(value, uuid.UUID) else value  # type: ignore[no-any-return]


def to_batch(layout: Layout, rows: list[tuple[Any, ...]], dims: dict[str, int]) -> RecordBatch:
    """One batch; rows that cannot be represented (a NULL or wrongly sized vector, metadata
    that is not an object) are reported in ``rejected`` naming record and column."""
    names = list(layout.dense)
    first = first_vector(names) if len(names) > 1 else names[0]
    n_dense = len(names)
    keep: list[int] = []
    rejected: list[Rejection] = []
    for r, row in enumerate(rows):
        rid = to_id(layout, row[0])
        why = _unreadable(layout, row, names, dims)
        if why:
            rejected.append(Rejection(rid, why[0], why[1]))
        else:
            keep.append(r)
    rows = [rows[r] for r in keep]
    blocks: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        raw = [row[1 + j] for row in rows]
        half = layout.dense[name].typname == "halfvec"
        block = wire.dense_block(raw, half)
        blocks[name] = block if block is not None else np.zeros((0, dims.get(name, 0)), np.float32)
    at = 1 + n_dense
    sparse: list[SparseVector | None] | None = None
    if layout.sparse is not None:
        sparse = [wire.sparse(row[at]) for row in rows]
        at += 1
        if not any(s is not None for s in sparse):
            sparse = None
    metas: list[dict[str, Any]] = []
    typed = list(layout.typed.values())
    for row in rows:
        meta: dict[str, Any] = dict(row[at]) if layout.meta_json is not None and row[at] is not None else {}
        base = at + (1 if layout.meta_json is not None else 0)
        for j, col in enumerate(typed):
            value = read_value(col, row[base + j])
            if value is not None:
                meta[col.name] = value
        metas.append(meta)
    batch = RecordBatch(
        ids=[to_id(layout, row[0]) for row in rows],
        vectors=blocks[first],
        metadata=metas,
        sparse=sparse,
        named={n: blocks[n] for n in names if n != first} if n_dense > 1 else {},
        vector_name=first if n_dense > 1 else "",
    )
    batch.rejected.extend(rejected)
    return batch


def _unreadable(layout: Layout, row: tuple[Any, ...], names: list[str], dims: dict[str, int]
                ) -> tuple[str, str] | None:
    for j, name in enumerate(names):
        raw = row[1 + j]
        if raw is None:
            return f"no value in vector column {name!r}", f"vector.{name}"
        want = dims.get(name, 0)
        if want and wire.dims(raw) != want:
            return (f"vector column {name!r} holds {wire.dims(raw)} dimensions here, "
                    f"{want} elsewhere", f"vector.{name}")
    if layout.meta_json is not None:
        at = 1 + len(names) + (1 if layout.sparse is not None else 0)
        if row[at] is not None and not isinstance(row[at], dict):
            return (f"metadata column {layout.meta_json!r} holds a {type(row[at]).__name__}, "
                    "not an object", "metadata")
    return None
