"""Pinecone connector (source and target) over the official ``pinecone`` SDK (REST, 2026-07).

``pinecone://INDEX`` with optional query parameters:

- ``namespace=NS``     one namespace only (``namespace=`` is the default namespace); without it
                       every namespace is scanned, in bytewise name order
- ``host=URL``         data-plane host of the index (skips the lookup; e.g. a local emulator).
                       The control plane follows the SDK's ``PINECONE_CONTROLLER_HOST``.
- ``api_key_env=NAME`` environment variable holding the API key (default ``PINECONE_API_KEY``)
- ``ids_file=/abs/path`` ids to read, one per line or ``namespace<TAB>id``: the way to read a
                       pod-based index, which cannot list its ids
- ``cloud=aws&region=us-east-1``  where ``create`` puts a new serverless index
- ``ready_timeout=600`` seconds ``create``/``drop`` wait for the index to be ready/gone

- ``list_streams=4``    listings a whole-index scan runs at once: namespaces, and the id
                       prefixes of a namespace holding at least
- ``split_above=5000`` records (see pinecone_scan)
- ``rate_limits=list:400,fetch:200`` requests a second where the index's limits were raised
                       (default: the documented ones; ``off``: no pacing; see pinecone_rates)

Reading the whole index (scan) lives in ``pinecone_scan``, with its cursor format, or in
``pinecone_ids_file`` for an ``ids_file``; sampling it for a profile in ``pinecone_sample``;
writes (upsert, delete, create, drop) in ``pinecone_write``; request pacing in
``pinecone_rates``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector
from vmkit.connectors.pinecone_ids_file import sample_ids_file, scan_ids_file
from vmkit.connectors.pinecone_rates import pacer_for, parse_limits
from vmkit.connectors.pinecone_sample import NAMESPACES_AT_ONCE, QUERIES_AT_ONCE, query_sample
from vmkit.connectors.pinecone_scan import ListScan, canonical_ns
from vmkit.connectors.pinecone_split import PROBES_AT_ONCE
from vmkit.connectors.pinecone_write import FETCH_IDS, MAX_METADATA, TO_PINECONE, PineconeWrites
from vmkit.errors import (
    ConfigError,
    InvalidData,
    MissingDependency,
    TerminalError,
    TransientError,
    VmkitError,
)
from vmkit.records import RecordBatch, RecordId, SparseVector

log = logging.getLogger(__name__)

_FROM_PINECONE = {v: k for k, v in TO_PINECONE.items()}
# fetch is a GET with every id in the query string; proxies cap request lines at 8-64 KB, so a
# request also stays under this many encoded bytes (1000 UUIDs fit in about 3 requests)
_FETCH_URL_BYTES = 16_000
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRITERS = 8  # write requests a runner sends at once (RunOptions.write_workers is 4), with room

CAPABILITIES = Capabilities(
    max_batch_records=1000,
    max_batch_bytes=2_000_000,
    id_kinds=frozenset({"string", "uuid"}),
    max_id_length=512,
    id_ascii_only=True,
    metrics=frozenset({"cosine", "euclidean", "dot"}),
    sparse=True,
    namespaces=True,
    metadata_nested=False,
    metadata_null=False,
    metadata_mixed_lists=False,
    metadata_big_ints=False,
    max_metadata_bytes=MAX_METADATA,
    field_name_pattern=r"(?!\$)[\s\S]*",  # keys must not start with '$' (filter operators)
    rejects_zero_vectors=True,
    eventually_consistent=True,
    wire_bytes_per_float=24,  # JSON text of a float32 printed as a double
)


class ListUnsupported(ConfigError, TerminalError):
    """A pod-based index cannot enumerate its ids: a config problem, and never worth a retry."""


class PineconeConnector(PineconeWrites, Connector):
    scheme = "pinecone"
    extra = "pinecone"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        self.index_name = self.name = parts.netloc or parts.path.strip("/")  # name: for plan()
        if not self.index_name:
            raise ConfigError("pinecone:// URI needs an index name, e.g. pinecone://my-index")
        blanks = parse_qs(parts.query, keep_blank_values=True)  # 'namespace=' is meaningful
        self.namespace = canonical_ns(blanks["namespace"][-1]) if "namespace" in blanks else None
        self.host = self.params.get("host")
        self.key_env = self.params.get("api_key_env", "PINECONE_API_KEY")
        if not _ENV_NAME.fullmatch(self.key_env):
            raise ConfigError("api_key_env must name an environment variable, e.g. MY_PINECONE_KEY")
        self.ids_file = self.params.get("ids_file")
        if self.ids_file is not None and not os.path.isabs(self.ids_file):
            raise ConfigError("ids_file must be an absolute path (one id, or namespace<TAB>id, a line)")
        self.cloud = self.params.get("cloud", "aws")
        self.region = self.params.get("region", "us-east-1")
        try:
            self.ready_timeout = float(self.params.get("ready_timeout", 600))
        except ValueError:
            raise ConfigError("ready_timeout must be a number of seconds") from None
        self._lock = threading.RLock()
        streams = self.int_param("list_streams", 4, 1, 64)
        self._list_scan = ListScan(self, streams, self.int_param("split_above", 5_000, 1))
        # Requests this connector may have in flight at once: a listing and two fetches per
        # stream, the split's probes, the sample's queries and namespaces (a locating query or
        # a fetch each), and the runner's write workers.
        self._in_flight = 3 * streams + PROBES_AT_ONCE + QUERIES_AT_ONCE + NAMESPACES_AT_ONCE + _WRITERS
        self._pacer = pacer_for(self.host or self.index_name,
                                parse_limits(self.params.get("rate_limits")))
        self._pc: Any = None
        self._index: Any = None
        self._model_cache: Any = None
        self._caps: Capabilities | None = None

    # -- SDK plumbing ------------------------------------------------------------------------
    def _key(self) -> str:
        key = os.environ.get(self.key_env, "")
        if not key.strip():
            raise ConfigError(f"no Pinecone API key: set the environment variable {self.key_env}")
        return key

    def _control(self) -> Any:
        with self._lock:
            if self._pc is None:
                try:
                    from pinecone import Pinecone
                except ImportError:
                    raise MissingDependency("pinecone", self.extra) from None
                with self.errors("connect"):
                    # The SDK keeps half its pool alive, and past that closes a connection
                    # after each request: on the service that is a TLS handshake a request,
                    # and under that churn we saw answers the emulator had written go unread
                    # until the SDK's 30 s timeout. So every request in flight keeps one.
                    self._pc = Pinecone(api_key=self._key(),
                                        connection_pool_maxsize=2 * self._in_flight)
            return self._pc

    def data_plane(self) -> Any:
        with self._lock:
            if self._index is None:
                host = self.host
                if not host:
                    model = self._model()
                    if model is None or not model.host:
                        raise TerminalError(f"Pinecone index '{self.index_name}' does not exist "
                                            "or has no host yet")
                    host = model.host
                with self.errors("connect"):
                    self._index = self._control().index(host=host)
            return self._index

    def _model(self, refresh: bool = False) -> Any:
        """The control plane's IndexModel, or None when the index does not exist."""
        with self._lock:
            if self._model_cache is None or refresh:
                pc = self._control()
                from pinecone.errors.exceptions import NotFoundError

                try:
                    with self.errors("describe index"):
                        self._model_cache = pc.indexes.describe(self.index_name)
                except TerminalError as exc:
                    if not isinstance(exc.__cause__, NotFoundError):
                        raise
                    self._model_cache = None
            return self._model_cache

    def pace(self, op: str, namespace: str = "", weight: int = 1) -> None:
        """Wait until a request of ``op`` stays within the index's rate limits (see
        pinecone_rates)."""
        self._pacer.wait(op, canonical_ns(namespace), weight)

    @contextmanager
    def errors(self, what: str, write: bool = False) -> Iterator[None]:
        """Translate SDK failures: 429/5xx/408/network -> TransientError; on a ``write``, a
        refusal of the data (400/413/422, or the SDK's own checks) -> InvalidData, which the
        runner bisects to the culprit records; anything else -> TerminalError."""
        try:
            yield
        except VmkitError:
            raise
        except Exception as exc:
            from pinecone.errors.exceptions import (
                ApiError,
                PineconeConnectionError,
                PineconeError,
                PineconeTimeoutError,
            )

            where = f"Pinecone {what} on index '{self.index_name}'"
            if isinstance(exc, ApiError):
                msg = self._scrub(f"{where} failed: HTTP {exc.status_code}: {exc.message}")
                status = exc.status_code
                if status in (408, 429) or status >= 500:
                    raise TransientError(msg, retry_after=_retry_after(exc)) from exc
                if status in (401, 403):
                    msg += f" (check the API key in ${self.key_env})"
                if write and status in (400, 413, 422):
                    raise InvalidData(msg) from exc
                raise TerminalError(msg) from exc
            if isinstance(exc, (PineconeTimeoutError, PineconeConnectionError, ConnectionError,
                                TimeoutError)):
                raise TransientError(self._scrub(f"{where}: {exc}")) from exc
            if isinstance(exc, PineconeError):
                kind = InvalidData if write and isinstance(exc, (ValueError, TypeError)) \
                    else TerminalError
                raise kind(self._scrub(f"{where}: {exc}")) from exc
            raise

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.key_env, "")
        return text.replace(key, "***") if len(key) >= 4 else text

    # -- capabilities ------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """Static limits, plus ``can_list`` from the index's deployment (pod indexes cannot)."""
        if self._caps is None:
            try:
                can_list = self.ids_file is not None or self._listable()
            except VmkitError as exc:  # unreachable or unconfigured: answer, but ask again later
                log.debug("capabilities without the index model: %s", exc)
                return CAPABILITIES
            self._caps = replace(CAPABILITIES, can_list=can_list)
        return self._caps

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._caps = value

    def _listable(self) -> bool:
        model = self._model()
        return model is None or not hasattr(model.deployment, "pod_type")

    # -- contract ----------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        model = self._model(refresh=True)
        if model is None:
            return None
        dense = model.schema.fields.get("_values")
        dimension = int(getattr(dense, "dimension", 0) or 0)
        metric = _FROM_PINECONE.get(getattr(dense, "metric", "dotproduct"), "dot")
        counts = self.namespace_counts()
        if self.namespace is not None:
            counts = {self.namespace: counts.get(self.namespace, 0)}
        return CollectionInfo(
            name=self.index_name,
            dimension=dimension,
            metric=metric,
            count=sum(counts.values()),
            namespaces=counts,
            # Sparse values live beside dense ones in dotproduct (hybrid) or sparse indexes.
            sparse="_sparse_values" in model.schema.fields or metric == "dot",
        )

    def count(self) -> int:
        counts = self.namespace_counts()
        if self.namespace is not None:
            return counts.get(self.namespace, 0)
        return sum(counts.values())

    def namespace_counts(self) -> dict[str, int]:
        index = self.data_plane()
        self.pace("describe_index_stats")
        with self.errors("describe_index_stats"):
            stats = index.describe_index_stats()
        return {canonical_ns(ns): s.vector_count for ns, s in stats.namespaces.items()
                if s.vector_count}

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if limit < 1:
            raise ValueError("scan limit must be at least 1")
        state = orjson.loads(cursor) if cursor else None
        if self.ids_file is not None:
            return scan_ids_file(self, state, limit)
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
            return sample_ids_file(self, n, seed)
        self._require_listable()  # a migration of it could not start: say so at planning
        counts = self.namespace_counts()
        if self.namespace is not None:
            counts = {self.namespace: counts[self.namespace]} if counts.get(self.namespace) else {}
        self._model()
        if sum(counts.values()) <= n or not self.dimension():
            return super().sample(n, seed)
        return query_sample(self, counts, n, seed)

    def nearest(self, namespace: str, point: np.ndarray, top_k: int, records: bool) -> list[Any]:
        """The ``top_k`` records nearest ``point`` in ``namespace``: ids, or whole records
        (values and metadata, as ``records_of`` takes them) if asked."""
        index = self.data_plane()
        self.pace("query", namespace)
        with self.errors("query"):
            return list(index.query(vector=point.tolist(), top_k=top_k, namespace=namespace,
                                    include_values=records, include_metadata=records).matches)

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        namespace = canonical_ns(namespace)
        wanted = [str(i) for i in ids]
        found: dict[str, Any] = {}
        index = self.data_plane()
        for chunk in _url_chunks(list(dict.fromkeys(wanted))):
            self.pace("fetch")
            with self.errors("fetch"):
                found.update(index.fetch(ids=chunk, namespace=namespace).vectors)
        return self.records_of([found[i] for i in dict.fromkeys(wanted) if i in found], namespace)

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

    def dimension(self) -> int:
        model = self._model_cache
        dense = model.schema.fields.get("_values") if model is not None else None
        return int(getattr(dense, "dimension", 0) or 0)

    def close(self) -> None:
        self._list_scan.close()  # outside the lock: a listing ahead may be waiting for it
        with self._lock:
            for client in (self._index, self._pc):
                if client is not None:
                    client.close()
            self._index = self._pc = None


def _url_chunks(ids: list[str]) -> Iterator[list[str]]:
    """Runs of ids within the fetch limits: 1000 ids and _FETCH_URL_BYTES of query string."""
    start, used = 0, 0
    for i, rid in enumerate(ids):
        size = len(quote_plus(rid)) + 5  # "&ids="
        if i > start and (i - start == FETCH_IDS or used + size > _FETCH_URL_BYTES):
            yield ids[start:i]
            start, used = i, 0
        used += size
    if start < len(ids):
        yield ids[start:]


def _retry_after(exc: Any) -> float | None:
    value = getattr(exc, "retry_after", None)
    if value is None:
        raw = (getattr(exc, "headers", None) or {}).get("retry-after")
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
    return value if value is None or value >= 0 else None
