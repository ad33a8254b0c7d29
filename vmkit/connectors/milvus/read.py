"""The reading half of MilvusConnector: scan by primary key, fetch by ids, rows -> RecordBatch.

Scan pages are ``pk > last`` (within one namespace) with ``limit``, asked in primary-key order
by the ``iterator`` query option that pymilvus's own QueryIterator sets
(pymilvus/client/iterator/query_iterator.py ``_query_options[ITERATOR_FIELD] = "True"``): the
server then reduces results by key, and Milvus Lite sorts them (milvus_lite/adapter/grpc/
servicer.py ``order_by_pk=iterator_request``; without it Lite answers in insertion order, so a
limited ``pk > last`` page would skip keys). No server-side iterator is kept: the cursor is the
JSON of the namespace and the last key, and a new process resumes from it exactly.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import orjson

from vmkit.connectors.milvus.schema import ABSENT_SPARSE_INDEX, DEFAULT_PARTITION, Layout, widen
from vmkit.core.records import RecordBatch, RecordId, Rejection, SparseVector

# Escapes both the server's grammar (Plan.g4 EscapeSequence) and Milvus Lite's tokenizer
# (milvus_lite/search/filter/tokens.py _ESCAPE_MAP) understand; other characters go as they
# are. pymilvus's own get() does not escape (milvus_client/base.py _pack_pks_expr).
WHOLE_PAGE = 10_000  # under a server's 16,384 query limit (milvus.io/docs/limitations.md)
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(value: Any) -> str:
    """``value`` as a filter expression literal."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"no filter literal for {type(value).__name__}")
    return str(value) if isinstance(value, int) else '"' + value.translate(_ESCAPES) + '"'


class MilvusReads:
    """The reading half of MilvusConnector."""

    if TYPE_CHECKING:  # provided by MilvusConnector (connector.py)
        collection: str

        @property
        def client(self) -> Any: ...
        def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...
        def _layout(self) -> Layout: ...
        def _spaces(self) -> dict[str, Any]: ...
        def _loaded(self) -> None: ...

    def _query(self, expr: str, namespace: str, limit: int | None = None, ordered: bool = False,
               fields: Sequence[str] = ("*",)) -> list[Any]:
        """Rows matching ``expr`` in ``namespace`` (its partition, or its partition key value)."""
        self._loaded()
        layout = self._layout()
        kwargs: dict[str, Any] = {"output_fields": list(fields)}
        if limit is not None:
            kwargs["limit"] = limit
        if ordered:
            kwargs.update(iterator="True", reduce_stop_for_best="True")
        if namespace or self._spaces():
            if layout.partition_key:
                value = self._spaces().get(namespace, namespace)
                expr = f"{layout.partition_key} == {literal(value)}" + (f" and ({expr})" if expr else "")
            else:
                kwargs["partition_names"] = [namespace or DEFAULT_PARTITION]
        return list(self._call(self.client.query, self.collection, filter=expr, **kwargs))

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        state = orjson.loads(cursor) if cursor else {}
        pk = self._layout().pk
        spaces = sorted(self._spaces() or {"": None}, key=str.encode)
        ns, last = state.get("ns", spaces[0]), state.get("k")
        while True:
            expr = "" if last is None else f"{pk} > {literal(last)}"  # "": from the first key
            rows = self._query(expr, ns, limit, ordered=True)
            if rows:
                batch = self.to_batch(rows, ns)
                last = rows[-1][pk]
                if len(rows) == limit:
                    return batch, orjson.dumps({"ns": ns, "k": last}).decode()
            later = [s for s in spaces if s.encode() > ns.encode()]
            nxt = None if not later else orjson.dumps({"ns": later[0], "k": None}).decode()
            if rows or nxt is None:
                return (batch if rows else RecordBatch.empty(namespace=ns)), nxt
            ns, last = later[0], None

    def _pages(self) -> Iterator[RecordBatch]:
        """Every record, in pages of ``WHOLE_PAGE``: Milvus Lite sorts all keys for each page
        (0.7 s a page at 100k records here), so whole-collection reads take big ones."""
        cursor = None
        while True:
            batch, cursor = self.scan(cursor, WHOLE_PAGE)
            yield batch
            if cursor is None:
                return

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """``n`` records drawn uniformly in one read of the collection (reservoir sampling,
        holding copies of the kept rows only, never the pages), one batch per namespace."""
        rng, seen = random.Random(seed), 0
        keep: list[RecordBatch] = []
        for batch in self._pages():
            for row in range(len(batch)):
                seen += 1
                if len(keep) < n:
                    keep.append(batch.take([row]))
                elif (j := rng.randrange(seen)) < n:
                    keep[j] = batch.take([row])
        by_ns: dict[str, list[RecordBatch]] = {}
        for one in keep:
            by_ns.setdefault(one.namespace, []).append(one)
        return [RecordBatch.concat(parts) for parts in by_ns.values()]

    def digests(self, **hash_opts: Any) -> Iterator[tuple[tuple[str, RecordId], bytes]]:
        from vmkit.core.fingerprint import batch_digests

        for batch in self._pages():
            yield from batch_digests(batch, **hash_opts)

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        keys = self._keys(ids)
        if not keys:
            return RecordBatch.empty(namespace=namespace)
        pk = self._layout().pk
        rows = self._query(f"{pk} in [{', '.join(literal(k) for k in keys)}]", namespace)
        return self.to_batch(rows, namespace)

    def _keys(self, ids: Sequence[RecordId]) -> list[RecordId]:
        """The ids this collection's key can hold (the others cannot be in it)."""
        if self._layout().pk_is_int:
            return [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63]
        return [i for i in ids if isinstance(i, str)]

    def to_batch(self, rows: list[Any], namespace: str) -> RecordBatch:
        layout = self._layout()
        skip = {layout.pk, *layout.vector_fields, *layout.skipped}
        keep: list[Any] = []
        rejected: list[Rejection] = []
        for row in rows:
            rid = row[layout.pk]
            if isinstance(rid, int) and rid < 0:  # vmkit ids are unsigned ints or strings
                rejected.append(Rejection(rid, "negative int64 key: no vmkit id kind holds it", "id", namespace))
            else:
                keep.append(row)
        dense: dict[str, np.ndarray] = {}
        for name, (kind, dim) in layout.dense.items():
            arr = np.zeros((len(keep), dim), np.float32)
            for i, row in enumerate(keep):
                arr[i] = widen(kind, row[name], dim)
            dense[name] = arr
        sparse: list[SparseVector | None] | None = None
        if layout.sparse:
            sparse = [_sparse(row.get(layout.sparse)) for row in keep]
        first = layout.first
        batch = RecordBatch(
            ids=[row[layout.pk] for row in keep],
            vectors=dense[first] if first else np.zeros((len(keep), 0), np.float32),
            metadata=[{k: v for k, v in row.items() if k not in skip} for row in keep],
            sparse=sparse if sparse and any(s is not None for s in sparse) else None,
            namespace=namespace,
            named={n: dense[n] for n in layout.others},
            vector_name=first if layout.others else "",
        )
        batch.rejected.extend(rejected)
        return batch


def _sparse(value: Any) -> SparseVector | None:
    """A SPARSE_FLOAT_VECTOR as pymilvus returns it: {index: value} (or a scipy row)."""
    if value is None:
        return None
    if hasattr(value, "indices") and hasattr(value, "data"):  # scipy sparse
        return SparseVector.of(value.indices, value.data)
    items = dict(value)
    if not items or list(items) == [ABSENT_SPARSE_INDEX]:
        return None
    return SparseVector.of([int(k) for k in items], [float(v) for v in items.values()])
