"""Primary-key ranges of a pgvector table, for reading it in parts from several processes.

Boundaries come from a sample (``TABLESAMPLE BERNOULLI``, about 100 keys a part) ordered by
PostgreSQL itself in the scan's own key order (read.select_sql's collation), so ranges never
overlap or leave gaps whatever the key type or collation. The first range is open below and the
last open above: keys written after planning are read too. Each range is read in keyset pages
(``WHERE pk > after AND pk < upper``), its cursor the last key read, as the whole-table scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.partitions import Partition
from vmkit.connectors.pgvector import read
from vmkit.connectors.pgvector.pool import sdk
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.pgvector.connector import PgvectorConnector

_PER_PART = 100  # sampled keys a part


def _key(layout: Any) -> Any:
    sql = sdk().sql
    pk = sql.Identifier(layout.pk.name)
    return sql.SQL('{} COLLATE "C"').format(pk) if layout.pk_collate_c else pk


def key_ranges(conn: PgvectorConnector, n: int) -> list[Partition] | None:
    layout = conn._need()
    total = conn.count()
    if total == 0 or n < 2:
        return None
    sql = sdk().sql
    pct = min(100.0, 100.0 * _PER_PART * n / total)
    q = sql.SQL("SELECT {} FROM {} TABLESAMPLE BERNOULLI (%s) REPEATABLE (7) ORDER BY {}").format(
        sql.Identifier(layout.pk.name), conn.qualified, _key(layout))
    with conn._pool.conn("sampling primary keys") as db:
        keys = [read.to_id(layout, r[0]) for r in db.execute(q, (pct,)).fetchall()]
    cuts: list[Any] = []
    for i in range(1, n):
        if keys and (k := keys[(i * len(keys)) // n]) not in cuts[-1:]:
            cuts.append(k)
    bounds: list[Any] = [None, *cuts, None]
    parts = len(bounds) - 1
    return [Partition(f"{i:04d}", "", bounds[i], bounds[i + 1], total // parts) for i in range(parts)]


def scan_range(conn: PgvectorConnector, part: Partition, cursor: str | None,
               limit: int) -> tuple[RecordBatch, str | None]:
    layout = conn._need()
    sql = sdk().sql
    try:
        after = orjson.loads(cursor)["after"] if cursor is not None else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise TerminalError(f"not a postgresql scan cursor: {(cursor or '')[:80]!r}") from None
    key = _key(layout)
    conds, args = [], []
    if cursor is not None:
        conds.append(sql.SQL("{} > %s").format(key))
        args.append(after)
    elif part.lower is not None:
        conds.append(sql.SQL("{} >= %s").format(key))
        args.append(part.lower)
    if part.upper is not None:
        conds.append(sql.SQL("{} < %s").format(key))
        args.append(part.upper)
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in layout.columns)
    q = sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT %s").format(cols, conn.qualified, where, key)
    limit = max(1, limit)
    with conn._pool.conn("reading a page") as db:
        rows = db.cursor(binary=True).execute(q, (*args, limit)).fetchall()
    batch = read.to_batch(layout, rows, conn._dims(layout))
    if len(rows) < limit:
        return batch, None
    return batch, orjson.dumps({"after": read.to_id(layout, rows[-1][0])}).decode()
