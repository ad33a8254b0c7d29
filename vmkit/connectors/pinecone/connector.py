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
- ``rate_limits=list:400,fetch:200`` limits a second where the index's were raised: requests,
                       or for ``upsert_bytes`` bytes, ``delete_records``/``delete_records_index``
                       records, ``query_units`` read units (default: the documented ones;
                       ``off``: no pacing; see pinecone_rates)
- ``max_429=20&max_429_s=60``  429s of one operation in a row (each an SDK call the SDK
                       already retried) and seconds they span, past both of which the run
                       stops resumably, naming the limit (e.g. a Starter plan's monthly write
                       units), instead of retrying without end (see pinecone_rates)
- ``refetch_attempts=5&refetch_wait=0.5``  fetches of a listed id the service does not return
                       (waiting 0.5 s, then twice as long each time, at most 8 s) before the
                       scan hands it over as a ``source_unreadable`` rejection (never dropped)

Ids, namespaces and list prefixes may hold any ASCII character but NUL (space, ``+``, ``%``,
``&``, ``#`` included): the reads that put them in a query string encode them so the service
reads them as written (see pinecone_wire). In this URI, write a ``+`` in a namespace as
``%2B`` (a ``+`` in a URI's query reads as a space). A namespace the service answers "not
found" for is empty to every read and delete.

Reads (scan, sample, fetch) live in ``pinecone_read``: reading the whole index in
``pinecone_scan``, with its cursor format, or in ``pinecone_ids_file`` for an ``ids_file``;
sampling it for a profile in ``pinecone_sample``;
writes (upsert, delete, create, drop) in ``pinecone_write``; request pacing in
``pinecone_rates``.

Facts this connector relies on, from ``shared/reference/vector-databases.md`` (Pinecone), each
with where to check it (SDK paths are inside the installed ``pinecone`` 10.2 package):

- REST, API version 2026-07, headers ``X-Pinecone-Api-Version`` and ``Api-Key``; the control
  plane host from ``PINECONE_CONTROLLER_HOST``, the data plane at the index's ``host``
  (``pinecone/_client.py``, ``Pinecone.index(host=...)``). The 2026-07 IndexModel carries
  ``schema.fields._values`` (dimension, metric), ``deployment`` (``pod_type`` for a pod index)
  and ``host`` (``pinecone/models/indexes/index.py``, ``IndexModel``): read in ``describe``.
- Upsert at most 1000 records and 2 MB a request; fetch and delete at most 1000 ids; metadata at
  most 40 KB a record, values string, number, bool or list of strings, keys not starting with
  ``$`` (docs.pinecone.io, "Database limits"; ``CAPABILITIES`` and ``pinecone_write``).
- Ids 1-512 ASCII characters (``pinecone/_internal/validation.py``, ``VECTOR_ID_MAX_LEN``,
  ``require_valid_vector_ids``). Namespace names ASCII, no NUL, 1-512 characters (same file,
  ``require_valid_namespace_name``): checked before a write (``pinecone_write.
  namespace_problem``); ``__default__`` names the default namespace ``""`` in stats and the
  namespaces listing.
- List pages hold 1-100 ids (``require_valid_list_limit``, same file), in bytewise order, the
  last page without ``pagination.next``; serverless only, a pod index cannot list (docs.pinecone.io,
  "List record IDs"): ``pinecone_scan``, ``pinecone_ids_file``.
- Rate limits answer 429 (docs.pinecone.io, "Rate limits"): paced and bounded in
  ``pinecone_rates``; 429 and 5xx are retried by the SDK honouring ``Retry-After``
  (``pinecone/_internal/http_client.py``, ``_compute_retry_after_delay``) and by the runner; a
  400/401/403/404 never is (``errors``).
- Writes are eventually consistent, and ``describe_index_stats`` counts lag them ("The counts
  lag writes": ``Index.describe_index_stats``, ``pinecone/index/__init__.py``): namespaces are
  found with ``Index.list_namespaces`` too (``namespace_names``), and a read-back waits
  (``eventually_consistent``).
- A query string's ``+`` is read as a plus, so ids and namespaces are percent-encoded
  (pinecone-io/python-sdk#372; ``pinecone_wire``); a missing namespace is answered 404
  ``{"code": 5, "message": "Namespace not found"}`` (``pinecone_wire.namespace_missing``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.connectors.pinecone.msgspec_types import prepare_struct_types
from vmkit.connectors.pinecone.partitions import namespace_parts, scan_prefix
from vmkit.connectors.pinecone.rates import (
    Throttled,
    is_monthly,
    limit_named,
    pacer_for,
    parse_limits,
    settle,
)
from vmkit.connectors.pinecone.read import ListUnsupported, PineconeReads
from vmkit.connectors.pinecone.sample import NAMESPACES_AT_ONCE, QUERIES_AT_ONCE
from vmkit.connectors.pinecone.scan import ListScan, canonical_ns
from vmkit.connectors.pinecone.split import PROBES_AT_ONCE
from vmkit.connectors.pinecone.write import (
    MAX_METADATA,
    REQUEST_BYTES,
    TO_PINECONE,
    PineconeWrites,
)
from vmkit.connectors.pinecone.write import namespace_problem as pinecone_namespace_problem
from vmkit.core.errors import (
    ConfigError,
    InvalidData,
    MissingDependency,
    SystemicRefusal,
    TerminalError,
    TransientError,
    VmkitError,
)
from vmkit.core.records import RecordBatch

log = logging.getLogger(__name__)
__all__ = ["CAPABILITIES", "ListUnsupported", "PineconeConnector"]

_FROM_PINECONE = {v: k for k, v in TO_PINECONE.items()}
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


class PineconeConnector(PineconeReads, PineconeWrites, Connector):
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
        self.refetch_attempts = self.int_param("refetch_attempts", 5, 1, 100)
        try:
            self.refetch_wait = float(self.params.get("refetch_wait", 0.5))
        except ValueError:
            self.refetch_wait = -1.0
        if not 0 <= self.refetch_wait <= 60:
            raise ConfigError("refetch_wait must be a number of seconds from 0 to 60")
        try:
            max_429_s = float(self.params.get("max_429_s", 60))
        except ValueError:
            max_429_s = -1.0
        if not 0 <= max_429_s <= 86_400:
            raise ConfigError("max_429_s must be a number of seconds from 0 to 86400")
        self._throttled = Throttled(self.int_param("max_429", 20, 1, 10_000), max_429_s)
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
        self._max_body = REQUEST_BYTES  # lowered when the service finds a body too big
        self._query_units: dict[str, int] = {}  # namespace -> read units of its last query
        self._ns_listing = True  # the namespaces listing works here, until it is refused

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
                    index = self._control().index(host=host)
                prepare_struct_types("pinecone")  # before the scan's threads decode at once
                self._index = index
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
        runner bisects to the culprit records; anything else -> TerminalError. A 429 that
        persists past the ``max_429`` bound -> SystemicRefusal naming the limit (see
        pinecone_rates)."""
        op = what.split(" ", 1)[0]
        try:
            yield
            self._throttled.succeeded(op)
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
                persisted = self._throttled.refused(op, is_monthly(str(exc.message))) \
                    if status == 429 else None
                if persisted is not None:
                    count, seconds = persisted
                    raise SystemicRefusal(self._scrub(
                        f"{where}: Pinecone answered 429 to {count} {op} requests in a row over "
                        f"{seconds:.0f}s (each retried by the SDK), past the max_429 bound: "
                        f"{limit_named(op, str(exc.message))} does not clear by retrying. The run "
                        f"stops here and resumes where it stopped (vmkit migrate resume) once the "
                        f"limit allows; last answer: HTTP 429: {exc.message}")) from exc
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

    def namespace_problem(self, namespace: str) -> str | None:
        return pinecone_namespace_problem(namespace)

    def namespace_counts(self) -> dict[str, int]:
        """Records per namespace that holds any: the larger of what stats and the namespaces
        listing count (see ``namespace_names``; both counts lag writes)."""
        counts = {ns: n for ns, n in self.namespace_names().items() if n}
        if self.namespace is not None:  # a URI pinned to one namespace reads only that one
            return {self.namespace: counts.get(self.namespace, 0)}
        return counts

    def namespace_names(self) -> dict[str, int]:
        """Every namespace the index is known to hold, with its record count as far as it is
        known (0 for one named but not yet counted).

        ``describe_index_stats`` lags writes more than list and fetch do ("The counts lag
        writes": the SDK's ``Index.describe_index_stats`` docstring, pinecone 10.2
        ``pinecone/index/__init__.py``), so a namespace written just before a scan can be
        missing from it. The namespaces listing (``Index.list_namespaces``, ``GET
        /namespaces``, same file; its ``record_count`` "Eventually consistent":
        ``pinecone/models/namespaces/models.py``) names it as soon as it exists, so both are
        asked and merged. Where the SDK or the index lacks the listing (an SDK before it, or a
        refusal of the route), stats alone are used, and the scan asks them again before it
        ends (see pinecone_scan)."""
        counts = self._stats_counts()
        listed = self._listed_namespaces()
        for ns, n in (listed or {}).items():
            counts[ns] = max(counts.get(ns, 0), n)
        return counts

    def _stats_counts(self) -> dict[str, int]:
        index = self.data_plane()
        self.pace("describe_index_stats")
        with self.errors("describe_index_stats"):
            stats = index.describe_index_stats()
        counts = {canonical_ns(ns): s.vector_count for ns, s in stats.namespaces.items() if s.vector_count}
        if self.namespace is not None:  # a URI pinned to one namespace reads only that one
            return {self.namespace: counts.get(self.namespace, 0)}
        return counts

    def _listed_namespaces(self) -> dict[str, int] | None:
        """Namespace -> record count from the namespaces listing, or None where it cannot be
        had (then remembered: stats alone from then on)."""
        index = self.data_plane()
        if not self._ns_listing or not callable(getattr(index, "list_namespaces", None)):
            return None
        out: dict[str, int] = {}
        try:
            with self.errors("list_namespaces"):
                for page in index.list_namespaces(limit=100):
                    for ns in page.namespaces:
                        out[canonical_ns(ns.name)] = int(ns.record_count or 0)
        except TerminalError as exc:  # e.g. 404/405/400: this index or service lacks the route
            if getattr(exc.__cause__, "status_code", 0) in (401, 403):
                raise
            log.info("Pinecone index '%s' cannot list its namespaces (%s): describe_index_stats "
                     "alone names them, and is asked again before a scan ends", self.index_name, exc)
            self._ns_listing = False
            return None
        return out

    def dimension(self) -> int:
        model = self._model_cache
        dense = model.schema.fields.get("_values") if model is not None else None
        return int(getattr(dense, "dimension", 0) or 0)

    # -- scale-out: partitions (pinecone_partitions) and a share of the index's limits ---------
    def partitions(self, n: int) -> list[Partition] | None:
        return namespace_parts(self, n)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self.scan(cursor, limit) if part.key == WHOLE else scan_prefix(self, part, cursor, limit)

    def share_limits(self, processes: int) -> None:
        """Each of ``processes`` paces itself at its share of every limit, so together they
        stay under the index's (pinecone_rates: the window is a fifth longer than a second).
        Shared, each share keeps a fifth back too: the processes' requests leave on their own
        clocks and meet at the index, where one delayed in one process can arrive in the same
        second as another's on time (the CI run of two workers beside the test suite saw 3
        429s with the plain share)."""
        limits = parse_limits(self.params.get("rate_limits"))
        margin = 0.8 if processes > 1 else 1.0
        self._pacer = pacer_for(self.host or self.index_name,
                                {op: max(1, int(n * margin) // max(1, processes)) for op, n in limits.items()})

    def settle_limits(self) -> None:
        settle(*(name for name in (self.host, self.index_name) if name))

    def close(self) -> None:
        self._list_scan.close()  # outside the lock: a listing ahead may be waiting for it
        with self._lock:
            for client in (self._index, self._pc):
                if client is not None:
                    client.close()
            self._index = self._pc = None


def _retry_after(exc: Any) -> float | None:
    value = getattr(exc, "retry_after", None)
    if value is None:
        raw = (getattr(exc, "headers", None) or {}).get("retry-after")
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
    return value if value is None or value >= 0 else None
