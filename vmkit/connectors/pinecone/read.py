"""The reading half of PineconeConnector: scan, sample, fetch and nearest (see pinecone.py for
the URI; the whole-index scan is pinecone_scan, the ids-file one pinecone_ids_file, the profile
sample pinecone_sample)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from vmkit.connectors.base import Connector
from vmkit.connectors.pinecone.ids_file import sample_ids_file, scan_ids_file
from vmkit.connectors.pinecone.sample import query_sample
from vmkit.connectors.pinecone.scan import canonical_ns
from vmkit.connectors.pinecone.wire import encoded_len, fetch_vectors, namespace_missing
from vmkit.connectors.pinecone.write import FETCH_IDS
from vmkit.core.errors import ConfigError, TerminalError
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, RecordId, Rejection, SparseVector

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from vmkit.connectors.pinecone.connector import PineconeConnector
    from vmkit.connectors.pinecone.scan import ListScan

# fetch is a GET with every id in the query string; proxies cap request lines at 8-64 KB, so a
# request also stays under this many encoded bytes (1000 UUIDs fit in about 3 requests)
_FETCH_URL_BYTES = 16_000
_REFETCH_CAP_S = 8.0  # longest pause between two fetches of listed ids not returned yet

log = logging.getLogger("vmkit.connectors.pinecone.connector")


class ListUnsupported(ConfigError, TerminalError):
    """A pod-based index cannot enumerate its ids: a config problem, and never worth a retry."""


class PineconeReads:
    """The reading half of PineconeConnector."""

    if TYPE_CHECKING:  # provided by PineconeConnector (pinecone.py)
        ids_file: str | None
        namespace: str | None
        index_name: str
        refetch_attempts: int
        refetch_wait: float
        _list_scan: ListScan
        _query_units: dict[str, int]  # namespace -> read units its last query cost

        def data_plane(self) -> Any: ...
        def pace(self, op: str, namespace: str = "", weight: int = 1) -> None: ...
        def errors(self, what: str, write: bool = False) -> AbstractContextManager[None]: ...
        def namespace_counts(self) -> dict[str, int]: ...
        def dimension(self) -> int: ...
        def _model(self, refresh: bool = False) -> Any: ...
        def _listable(self) -> bool: ...

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if limit < 1:
            raise ValueError("scan limit must be at least 1")
        state = orjson.loads(cursor) if cursor else None
        if self.ids_file is not None:
            return scan_ids_file(cast("PineconeConnector", self), state, limit)
        if state is not None and "offset" in state:
            raise ConfigError("this cursor belongs to an ids_file scan; keep the same URI to resume")
        self._require_listable()
        return self._list_scan.scan(state, limit)

    def _require_listable(self) -> None:
        if self.ids_file is None and not self._listable():
            raise ListUnsupported(
                f"Pinecone index '{self.index_name}' is pod-based: pod indexes cannot list their "
                "ids, so vmkit cannot enumerate it. Give the ids in a file instead: "
                f"pinecone://{self.index_name}?ids_file=/abs/path/ids.txt (one id a line, or "
                "namespace<TAB>id), e.g. exported from your application's database."
            )

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` records spread over what a scan reads, without reading it all: drawn
        from the ids file if there is one, else found with queries (see pinecone_sample). An
        index no bigger than ``n``, or one with sparse vectors only (no dense point to query
        from), is read whole."""
        if self.ids_file is not None:
            return sample_ids_file(cast("PineconeConnector", self), n, seed)
        self._require_listable()  # a migration of it could not start: say so at planning
        counts = self.namespace_counts()
        if self.namespace is not None:
            counts = {self.namespace: counts[self.namespace]} if counts.get(self.namespace) else {}
        self._model()
        if sum(counts.values()) <= n or not self.dimension():
            return Connector.sample(cast(Connector, self), n, seed)  # read it whole
        return query_sample(cast("PineconeConnector", self), counts, n, seed)

    def nearest(self, namespace: str, point: np.ndarray, top_k: int, records: bool) -> list[Any]:
        """The ``top_k`` records nearest ``point`` in ``namespace``: ids, or whole records
        (values and metadata, as ``records_of`` takes them) if asked."""
        index = self.data_plane()
        self.pace("query", namespace)
        # Read units a query costs grow with the namespace (pinecone.io/learn/read-units: "A
        # query request uses a number of RUs that is proportional to the size of your
        # namespace"); each answer reports its own (``usage.read_units``), so the last one
        # of the namespace weighs the next against the 2,000 a second per index.
        units = self._query_units.get(namespace, 1)
        self.pace("query_units", "", units)
        try:
            with self.errors("query"):
                answer = index.query(vector=point.tolist(), top_k=top_k, namespace=namespace,
                                     include_values=records, include_metadata=records)
            used = getattr(getattr(answer, "usage", None), "read_units", None)
            if isinstance(used, (int, float)) and used > 0:
                self._query_units[namespace] = max(1, int(used + 0.999))
            return list(answer.matches)
        except TerminalError as exc:
            if namespace_missing(exc):  # 404 "Namespace not found": an empty namespace
                return []
            raise

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        """The records of ``ids`` that ``namespace`` holds, in the order asked; ids it does
        not hold are absent (see ``fetch_listed`` for ids a listing named)."""
        namespace = canonical_ns(namespace)
        wanted = [str(i) for i in ids]
        found: dict[str, Any] = {}
        index = self.data_plane()
        for chunk in _url_chunks(list(dict.fromkeys(wanted))):
            self.pace("fetch")
            try:
                with self.errors("fetch"):
                    found.update(fetch_vectors(index, chunk, namespace).vectors)
            except TerminalError as exc:
                if not namespace_missing(exc):
                    raise
                found.clear()  # 404 "Namespace not found": it holds none of them
                break
        return self.records_of([found[i] for i in dict.fromkeys(wanted) if i in found], namespace)

    def fetch_listed(self, ids: Sequence[str], namespace: str) -> RecordBatch:
        """Every one of ``ids``, which a listing (or the ids file) named: as a record, or, when
        fetches keep not returning it, as a ``source_unreadable`` rejection, never dropped.
        The ids a fetch did not return are fetched again with backoff (the service is
        eventually consistent: a listing can name a record before a fetch returns it),
        ``refetch_attempts`` fetches in all, waiting ``refetch_wait`` seconds at first and
        twice as long each time after (at most 8 s)."""
        namespace = canonical_ns(namespace)
        wanted = list(dict.fromkeys(ids))
        parts: list[RecordBatch] = []
        missing = wanted
        started = time.monotonic()

        def fetch_missing() -> list[str]:
            nonlocal missing
            got = self.fetch(missing, namespace)
            if len(got):
                parts.append(got)
                have = set(got.ids)
                missing = [i for i in missing if i not in have]
            return missing

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.refetch_attempts)),
            wait=wait_exponential(multiplier=self.refetch_wait, min=self.refetch_wait,
                                  max=_REFETCH_CAP_S),
            retry=retry_if_result(bool),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else missing,
            before_sleep=lambda state: log.debug(
                "namespace %r: %d listed ids not fetched yet (attempt %d); fetching them again",
                namespace, len(missing), state.attempt_number),
        )
        retrying(fetch_missing)
        batch = RecordBatch.concat(parts) if parts else RecordBatch.empty(self.dimension(), namespace)
        if len(parts) > 1:  # back in the order listed
            row = {rid: i for i, rid in enumerate(batch.ids)}
            batch = batch.take([row[i] for i in wanted if i in row])
        batch.namespace = namespace
        if missing:
            seconds = time.monotonic() - started
            log.warning("namespace %r: %d listed ids were not returned by %d fetches over %.1f s; "
                        "recorded as unreadable (e.g. %r)", namespace, len(missing),
                        max(1, self.refetch_attempts), seconds, missing[0])
            reason = (f"listed, but {max(1, self.refetch_attempts)} fetches over {seconds:.1f} s "
                      "did not return it (deleted since it was listed, or unreadable)")
            batch.rejected.extend(Rejection(rid, reason, SOURCE_UNREADABLE, namespace)
                                  for rid in missing)
        return batch

    def records_of(self, rows: Sequence[Any], namespace: str) -> RecordBatch:
        """A batch of the SDK's fetched vectors or query matches (with values and metadata)."""
        if not rows:
            return RecordBatch.empty(self.dimension(), namespace)
        sparse = [None if v.sparse_values is None
                  else SparseVector.of(v.sparse_values.indices, v.sparse_values.values)
                  for v in rows]
        return RecordBatch(
            ids=[v.id for v in rows],
            vectors=np.asarray([v.values for v in rows], dtype=np.float32),
            metadata=[dict(v.metadata or {}) for v in rows],
            sparse=sparse if any(s is not None for s in sparse) else None,
            namespace=namespace,
        )


def _url_chunks(ids: list[str]) -> Iterator[list[str]]:
    """Runs of ids within the fetch limits: 1000 ids and _FETCH_URL_BYTES of query string."""
    start, used = 0, 0
    for i, rid in enumerate(ids):
        size = encoded_len(rid) + 5  # "&ids="
        if i > start and (i - start == FETCH_IDS or used + size > _FETCH_URL_BYTES):
            yield ids[start:i]
            start, used = i, 0
        used += size
    if start < len(ids):
        yield ids[start:]
