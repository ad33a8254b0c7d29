"""Weaviate connector (weaviate-client v4: REST for schema, gRPC for data).

``weaviate://HOST:PORT/Collection`` with query options (all optional):

- ``grpc_port=P`` (default 50051), ``grpc_host=H`` (default HOST), ``secure=true`` (TLS on both)
- ``api_key_env=NAME``   environment variable holding the API key (default WEAVIATE_API_KEY)
- ``tenant=T``           read/write only tenant T, presented as one partition (namespace "")
- ``vector=NAME``        read/write only the named vector NAME; without it every named vector
                         is carried (``default``, else the first name, in RecordBatch.vectors,
                         the others in RecordBatch.named) and created under its own name
- ``consistency=ALL``    ONE | QUORUM | ALL for every read and write (validation read-backs)
- ``tenants=fail|active|activate`` what to do with inactive (INACTIVE, OFFLOADED...) tenants
                         of a source: by default the plan has an error listing them; ``active``
                         reads the active ones only; ``activate`` activates each for reading and
                         puts it back to its former state (see weaviate_tenants)
- ``multi_tenancy=true`` namespaces are tenants (capabilities.namespaces); create() makes a
                         multi-tenant collection (so does ``tenant=``)
- ``index=flat``         create() with a flat index instead of HNSW
- ``timeout=S``          query/insert timeout in seconds; ``object_retries=N`` (default 3)

Scan cursor: JSON ``{"pos": {tenant: last uuid | true when finished}}``; tenants are read in
name order, objects in uuid order (Weaviate's ``after`` cursor), so a persisted cursor resumes
exactly. Metadata read back: dates as RFC3339 strings, uuids as strings, nulls dropped (Weaviate
does not distinguish a null from a missing property).

This module holds the SDK plumbing, error mapping, schema facts, describe and count; the reads
(scan, sample, fetch) are in weaviate_read.py (WeaviateReads), the writes (create, drop, upsert,
delete, tenants, properties) in weaviate_write.py (WeaviateWrites).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from vmkit.connectors.base import (
    DEFAULT_VECTOR,
    Capabilities,
    CollectionInfo,
    Connector,
    first_vector,
)
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.connectors.weaviate import naming as naming
from vmkit.connectors.weaviate.errors import is_transient_status
from vmkit.connectors.weaviate.partitions import scan_range, tenant_ranges
from vmkit.connectors.weaviate.read import WeaviateReads
from vmkit.connectors.weaviate.sample import TENANTS_AT_ONCE
from vmkit.connectors.weaviate.scan import TenantScan
from vmkit.connectors.weaviate.tenants import TenantActivity, policy_of
from vmkit.connectors.weaviate.write import TO_DISTANCE, WeaviateWrites
from vmkit.core.errors import ConfigError, MissingDependency, TerminalError, TransientError
from vmkit.core.records import RecordBatch

FROM_DISTANCE = {v: k for k, v in TO_DISTANCE.items()} | {"hamming": "hamming"}


@dataclass
class WeaviateCollectionInfo(CollectionInfo):
    """CollectionInfo plus what only Weaviate has: named vectors, properties, tenancy."""

    vector: str = "default"  # the vector space RecordBatch.vectors carries
    named_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> dim, metric
    properties: dict[str, str] = field(default_factory=dict)  # name -> dataType
    multi_tenant: bool = False


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


class WeaviateConnector(WeaviateReads, WeaviateWrites, Connector):
    scheme = "weaviate"
    extra = "weaviate"
    capabilities = Capabilities(
        max_batch_records=1000,
        max_batch_bytes=8 * 1024 * 1024,  # well under gRPC's ~100 MB message cap
        id_kinds=frozenset({"uuid"}),
        metrics=frozenset(TO_DISTANCE),
        normalizes_cosine=False,  # Weaviate returns vectors exactly as written
        sparse=False,
        named_vectors=True,
        namespaces=True,  # tenants
        metadata_nested=True,
        metadata_null=False,  # a null property is indistinguishable from a missing one
        metadata_big_ints=False,  # scalar ints travel as float64 in a protobuf Struct
        metadata_uniform_lists=True,  # array properties are typed: text[], int[], ...
        metadata_typed_keys=True,  # a property's type is fixed by the first value it gets
        field_name_pattern=naming.STABLE_FIELD_PATTERN,
        reserved_fields=naming.RESERVED_PROPERTIES,
        reserved_suffixes=naming.RESERVED_SUFFIXES,  # refused for new properties since 2026-05
        wire_bytes_per_float=4,
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        p = self.params
        self.secure = _flag(p.get("secure"))
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.secure else 8080)
        self.grpc_host = p.get("grpc_host", self.host)
        self.grpc_port = int(p.get("grpc_port", 50051))
        raw = parts.path.strip("/")
        self.collection = raw[:1].upper() + raw[1:]  # Weaviate capitalizes the first letter
        if not naming.is_valid_collection_name(self.collection):
            raise ConfigError(f"weaviate:// URI needs a collection name matching [A-Z][_0-9A-Za-z]*"
                              f" (e.g. weaviate://host:8080/{naming.collection_name(raw or 'docs')})")
        self.tenant = p.get("tenant") or None
        self.vector_name = p.get("vector") or None
        self.consistency = (p.get("consistency") or "").upper() or None
        if self.consistency not in (None, "ONE", "QUORUM", "ALL"):
            raise ConfigError("consistency must be ONE, QUORUM or ALL")
        self.key_env = p.get("api_key_env", "WEAVIATE_API_KEY")
        self.multi_tenancy = _flag(p.get("multi_tenancy"))
        # Source namespaces become tenants only on a multi-tenant target; otherwise (and with a
        # pinned tenant, which is one partition) the plan keeps them in a metadata field.
        self.capabilities = replace(type(self).capabilities,
                                    namespaces=self.multi_tenancy and self.tenant is None)
        self.index = p.get("index", "hnsw")
        self.timeout = float(p.get("timeout", 60))
        self.object_retries = self.int_param("object_retries", 3, 0)
        self._client: Any = None
        self._lock = threading.RLock()
        self._facts: dict[str, Any] | None = None  # multi-tenant, named vectors, properties
        self._tenants: set[str] = set()  # tenants known to exist (cache)
        self._dim: int | None = None
        self._tenant_scan = TenantScan(self, self.int_param("tenant_streams", 4, 1, 64))
        self._activity = TenantActivity(self, policy_of(p.get("tenants")))

    # -- plumbing --------------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        key = os.environ.get(self.key_env)
        if key is None and "api_key_env" in self.params:
            raise ConfigError(f"environment variable {self.key_env} (api_key_env) is not set")
        return key or None

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.key_env)
        return text.replace(key, "***") if key else text

    @staticmethod
    def _sdk() -> Any:
        try:
            import weaviate
        except ImportError:
            raise MissingDependency("weaviate-client", "weaviate") from None
        return weaviate

    def _conn(self) -> Any:
        with self._lock:
            if self._client is None:
                weaviate = self._sdk()
                from weaviate.classes.init import AdditionalConfig, Auth, Timeout

                key = self._api_key()
                with self._errors("connect"):
                    self._client = weaviate.connect_to_custom(
                        http_host=self.host, http_port=self.port, http_secure=self.secure,
                        grpc_host=self.grpc_host, grpc_port=self.grpc_port, grpc_secure=self.secure,
                        auth_credentials=Auth.api_key(key) if key else None,
                        additional_config=AdditionalConfig(timeout=Timeout(
                            init=min(self.timeout, 10), query=self.timeout, insert=self.timeout)),
                        skip_init_checks=True)  # no network call for a version warning
            return self._client

    def _coll(self, tenant: str | None = None) -> Any:
        coll = self._conn().collections.get(self.collection)
        if tenant:
            coll = coll.with_tenant(tenant)
        if self.consistency:
            from weaviate.classes.config import ConsistencyLevel

            coll = coll.with_consistency_level(ConsistencyLevel[self.consistency])
        return coll

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (TransientError, TerminalError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport error is classified
            raise self._classify(exc, what) from None

    def _classify(self, exc: BaseException, what: str) -> Exception:
        """TransientError for UNAVAILABLE/DEADLINE/RESOURCE_EXHAUSTED/ABORTED, for UNKNOWN with
        a temporary condition in its text (Weaviate's handlers return plain errors, so they
        arrive as UNKNOWN: see weaviate_errors), 429, 5xx, connection loss; TerminalError
        otherwise. Walks the cause chain: the SDK wraps gRPC errors."""
        msg = f"weaviate {what} on {self.collection}: {self._scrub(str(exc))}"
        chain: list[BaseException] = []
        seen: BaseException | None = exc
        while seen is not None and len(chain) < 8:
            chain.append(seen)
            seen = seen.__cause__ or seen.__context__
        for e in chain:
            code = getattr(e, "code", None)
            name = type(e).__name__
            if callable(code):
                status = getattr(code(), "name", "")
                if status:
                    details = self._scrub(str(e.details())) if hasattr(e, "details") else ""
                    full = f"weaviate {what} on {self.collection}: {status}: {details}"
                    return TransientError(full) if is_transient_status(status, details) else TerminalError(full)
            status_code = getattr(e, "status_code", None)
            if isinstance(status_code, int):
                return TransientError(msg) if status_code == 429 or status_code >= 500 else TerminalError(msg)
            if name in ("WeaviateRetryError", "WeaviateTimeoutError", "WeaviateConnectionError",
                        "ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError", "ReadError"):
                return TransientError(msg)
        return TerminalError(msg)

    def _backoff(self, attempt: int) -> None:
        """The pause before retrying objects that failed transiently (used by _insert)."""
        time.sleep(min(0.2 * 2 ** attempt, 2.0))

    def _config(self) -> Any:
        with self._errors("read schema"):
            return self._conn().collections.get(self.collection).config.get()

    def _exists(self) -> bool:
        with self._errors("check collection"):
            return bool(self._conn().collections.exists(self.collection))

    # -- schema facts -----------------------------------------------------------------------------
    def _spaces(self, cfg: Any) -> tuple[dict[str, str], dict[str, str]]:
        """Vector name -> Weaviate distance for every vector space objects carry, and name ->
        why for the named vectors that cannot be read.

        A collection may hold a legacy (unnamed) vector, named vectors, or both: named vectors
        can be added to a legacy collection later, and its schema then has the class-level
        ``vectorIndexConfig`` and a ``vectorConfig``. The legacy vector is presented as
        "default" (as the SDK names it). A named vector whose index was dropped
        (``collection.config.delete_vector_index()``) comes back as ``vectorIndexType: "none"``
        (the SDK's ``_VectorIndexConfigNone``, without a distance) and its data is being removed
        from every object: it is skipped, and the plan says so."""
        spaces: dict[str, str] = {}
        skipped: dict[str, str] = {}
        vic = cfg.vector_index_config
        if vic is not None or not cfg.vector_config:
            metric = getattr(vic, "distance_metric", None)
            spaces[DEFAULT_VECTOR] = str(metric.value) if metric is not None else "cosine"
        for n, v in (cfg.vector_config or {}).items():
            metric = getattr(v.vector_index_config, "distance_metric", None)
            if metric is None:
                skipped[n] = ("its vector index was dropped (vectorIndexType none); Weaviate removes "
                              "its data from every object, so it is not copied")
            else:
                spaces[n] = str(metric.value)
        if not spaces:
            raise TerminalError(f"{self.collection} has no readable vector: {skipped}")
        return spaces, skipped

    def _selected(self, spaces: dict[str, str]) -> str:
        if self.vector_name:
            if self.vector_name not in spaces:
                raise TerminalError(f"{self.collection} has no vector named {self.vector_name!r} "
                                    f"(it has {sorted(spaces)})")
            return self.vector_name
        return first_vector(list(spaces))

    def _schema(self) -> dict[str, Any]:
        """Schema facts reads and writes depend on, cached; refreshed after create/drop."""
        if self._facts is None:
            cfg = self._config()
            spaces, skipped = self._spaces(cfg)
            first = self._selected(spaces)
            named = bool(cfg.vector_config)
            self._facts = {"mt": bool(cfg.multi_tenancy_config.enabled), "named": named,
                           # a legacy vector next to named ones (read apart: see _fetch_objects)
                           "legacy": named and cfg.vector_index_config is not None,
                           "spaces": spaces, "skipped": skipped, "vector": first,
                           "others": [] if self.vector_name else sorted(n for n in spaces if n != first),
                           "props": {p.name: p.data_type.value for p in cfg.properties}}
        return self._facts

    def _tenant_names(self, multi_tenant: bool) -> list[str]:
        if not multi_tenant:
            if self.tenant:
                raise TerminalError(f"{self.collection} is not multi-tenant; remove tenant= from the URI")
            return [""]
        if self.tenant:
            return self._activity.readable([self.tenant])
        return self._activity.readable(self._all_tenants())

    def _all_tenants(self) -> list[str]:
        """Every tenant, their activity states noted (see weaviate_tenants)."""
        with self._errors("list tenants"):
            tenants = self._coll().tenants.get()
        self._tenants.update(tenants)
        self._activity.note(tenants)
        return sorted(tenants)

    def _count(self, tenant: str) -> int:
        with self._activity.awake(tenant), self._errors("count"):
            return int(self._coll(tenant or None).aggregate.over_all(total_count=True).total_count or 0)

    def _counts(self, multi_tenant: bool) -> dict[str, int]:
        """Records per tenant ("" for a collection without tenants), several tenants counted
        at once: a collection may hold thousands of tenants, each count a round trip."""
        names = self._activity.countable(self._tenant_names(multi_tenant))
        if not names:
            return {}
        if len(names) == 1:
            return {names[0]: self._count(names[0])}
        with ThreadPoolExecutor(TENANTS_AT_ONCE, thread_name_prefix="vmkit-weaviate-count") as pool:
            return dict(zip(names, pool.map(self._count, names)))

    # -- contract ---------------------------------------------------------------------------------
    def describe(self) -> WeaviateCollectionInfo | None:
        if not self._exists():
            return None
        self._facts = None  # describe always reads the schema afresh
        facts = self._schema()
        spaces, selected, others = facts["spaces"], facts["vector"], facts["others"]
        findings: list[dict[str, Any]] = []
        if facts["mt"]:  # inactive tenants: a decision of the plan (tenants= on the URI)
            if self.tenant:
                self._activity.refresh(self.tenant)
            findings = self._activity.findings([self.tenant] if self.tenant else self._all_tenants())
        with self._activity.hold():  # tenants activated for counting are put back at the end
            counts = self._counts(facts["mt"])
            dims: dict[str, int] = {}
            for t in (t for t, n in counts.items() if n):  # the API has no dimension: sample one
                objects = self._fetch_objects(t, facts, "sample", wanted=list(spaces), limit=1)
                dims = {n: len(v) for n, v in objects[0].vector.items()} if objects else {}
                if dims:
                    break
        self._dim = dims.get(selected) or self._dim
        return WeaviateCollectionInfo(
            name=self.collection, dimension=dims.get(selected, 0),
            metric=FROM_DISTANCE.get(spaces[selected], spaces[selected]), count=sum(counts.values()),
            namespaces=counts if facts["mt"] and not self.tenant else {}, sparse=False,
            vector=selected, multi_tenant=facts["mt"], properties=dict(facts["props"]),
            vector_name=selected if others else "",
            extra_vectors={n: {"dimension": dims.get(n, 0), "metric": FROM_DISTANCE.get(spaces[n], spaces[n])}
                           for n in others},
            named_vectors={n: {"dimension": dims.get(n, 0), "metric": FROM_DISTANCE.get(d, d)}
                           for n, d in spaces.items()},
            skipped_vectors=dict(facts["skipped"]), findings=findings)

    def count(self) -> int:
        if not self._exists():
            return 0
        return sum(self._counts(self._schema()["mt"]).values())

    def namespace_counts(self) -> dict[str, int]:
        """The aggregate count per tenant (a pinned tenant is the default namespace, as its
        scan says), without describe()'s vector sampling."""
        if not self._exists():
            return {}
        counts = self._counts(self._schema()["mt"])
        return {"": sum(counts.values())} if self.tenant else counts

    def partitions(self, n: int) -> list[Partition] | None:
        return tenant_ranges(self, n)  # tenants and uuid ranges (weaviate_partitions)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self.scan(cursor, limit) if part.key == WHOLE else scan_range(self, part, cursor, limit)

    def close(self) -> None:
        self._tenant_scan.close()  # outside the lock: a read ahead may be waiting for it
        self._activity.close()  # tenants vmkit activated go back to their former state
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
