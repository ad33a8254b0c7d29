"""The Connector contract. Limits and features are data (Capabilities), so the planner and the
runner never branch on a connector's name."""

from __future__ import annotations

import abc
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import parse_qs, urlsplit

from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.core.errors import ConfigError, SecretInURI, TerminalError
from vmkit.core.records import RecordBatch, RecordId

# Canonical metric names used everywhere inside vmkit; connectors translate at their edge.
METRICS = ("cosine", "euclidean", "dot", "manhattan")

# Query parameters that would carry a secret, in any spelling (api-key, access_token,
# x-api-key...). URIs are stored and shown, so they are refused. Names ending in "env" only
# name an environment variable (api_key_env=MY_KEY) and are fine.
_SECRET_WORDS = ("key", "token", "password", "passwd", "secret", "auth", "credential")


def _secret_param(name: str) -> bool:
    flat = name.lower().replace("-", "").replace("_", "")
    return not flat.endswith("env") and any(word in flat for word in _SECRET_WORDS)


@dataclass(frozen=True)
class Capabilities:
    """What a connector can store and how much one request may carry."""

    max_batch_records: int = 1000
    max_batch_bytes: int = 32 * 1024 * 1024
    id_kinds: frozenset[str] = frozenset({"uuid", "uint", "string"})  # what the target accepts
    max_id_length: int | None = None
    id_ascii_only: bool = False  # string ids must be ASCII (Pinecone refuses others with a 400)
    metrics: frozenset[str] = frozenset(METRICS)
    normalizes_cosine: bool = False  # stores unit vectors under the cosine metric
    sparse: bool = False
    sparse_nonnegative: bool = False  # sparse weights must be >= 0 (Milvus)
    named_vectors: bool = False  # several named dense vectors per record
    namespaces: bool = False
    # Ids are unique across the whole collection, not per namespace (Milvus partitions share
    # one primary key space): the same id in two namespaces would be one record.
    namespace_ids_shared: bool = False
    # Other collections of the same database are reachable (``Connector.sibling``), so source
    # namespaces can become one collection each; their names avoid these characters and length.
    collections: bool = False
    collection_name_forbidden: str = ""
    max_collection_name: int | None = None
    metadata_nested: bool = True  # objects inside metadata values
    metadata_null: bool = True
    metadata_mixed_lists: bool = True  # lists of anything (False: lists of strings only)
    metadata_uniform_lists: bool = False  # each list must hold one type, no nulls (Weaviate)
    metadata_big_ints: bool = True  # ints past 2**53 stored exactly (False: as float64)
    # Each key holds one type across records (a typed schema: Weaviate properties, typed
    # columns): a key whose values mix types travels as JSON text (Plan.text_fields).
    metadata_typed_keys: bool = False
    # Values kept as the Python objects given (an in-process store). False: stored as JSON,
    # so dates and times travel as ISO-8601 text and NaN/Inf cannot travel at all.
    metadata_objects: bool = False
    max_metadata_bytes: int | None = None
    field_name_pattern: str | None = None  # regex every metadata key must match
    reserved_fields: frozenset[str] = frozenset()
    # Named vectors are fields beside the metadata keys (Milvus fields, typed columns): a key
    # named like one of the plan's vectors is renamed as a reserved one is.
    vector_names_reserved: bool = False
    # Endings a metadata key must not have (compared case-insensitively); such keys are renamed
    # by the plan (vmkit.core.naming), e.g. Weaviate's internal index suffixes ``_temp``, ``_nullState``.
    reserved_suffixes: tuple[str, ...] = ()
    rejects_zero_vectors: bool = False
    can_list: bool = True
    eventually_consistent: bool = False
    parallel_writes: bool = True
    # Bytes one vector component costs on the wire: 4 for binary (gRPC, numpy), about 24 for
    # JSON text. Used to keep write requests under max_batch_bytes.
    wire_bytes_per_float: int = 4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id_kinds"] = sorted(self.id_kinds)
        d["metrics"] = sorted(self.metrics)
        d["reserved_fields"] = sorted(self.reserved_fields)
        d["reserved_suffixes"] = list(self.reserved_suffixes)  # as JSON gives it back
        return d


# What TargetSpec.fields says of a metadata key: one scalar type, or "json" for objects, lists,
# dates and keys whose values mix types (nulls aside).
FIELD_KINDS = ("bool", "int", "float", "str", "json")

DEFAULT_VECTOR = "default"  # the name a first vector gets where every vector needs one


def first_vector(names: Sequence[str]) -> str:
    """The vector a multi-vector collection presents first: ``default`` if there is one, else
    the first name in order, so every reader picks the same one."""
    return DEFAULT_VECTOR if DEFAULT_VECTOR in names else min(names)


@dataclass
class CollectionInfo:
    name: str
    dimension: int
    metric: str
    count: int
    namespaces: dict[str, int] = field(default_factory=dict)
    sparse: bool = False
    # With several dense vectors per record: the name of the one ``dimension`` and ``metric``
    # describe, and the others as name -> {"dimension": d, "metric": m}.
    vector_name: str = ""
    extra_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Vector spaces the source has but cannot be read, name -> why (the plan reports them).
    skipped_vectors: dict[str, str] = field(default_factory=dict)
    # What the plan must say about the source, as PlanWarning fields (field, message, policy,
    # severity, count), e.g. Weaviate's inactive tenants.
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TargetSpec:
    """What vmkit asks a target to create. ``vector_name`` and ``extra_vectors`` are set only
    when records carry several named dense vectors (see CollectionInfo). ``fields`` is the
    metadata the plan's sample saw, key as written -> one of FIELD_KINDS, for targets that
    give each key a typed column (pgvector); keys it does not name may still arrive."""

    name: str
    dimension: int
    metric: str
    sparse: bool = False
    vector_name: str = ""
    extra_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def vector_spaces(self) -> dict[str, tuple[int, str]]:
        """Every dense vector space by name -> (dimension, metric), the first one first."""
        spaces = {self.vector_name: (self.dimension, self.metric)}
        spaces.update((n, (int(v["dimension"]), str(v["metric"]))) for n, v in sorted(self.extra_vectors.items()))
        return spaces

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


T = TypeVar("T")


def reservoir(items: Iterable[T], n: int, rng: random.Random) -> list[T]:
    """``n`` of ``items`` drawn uniformly in one pass, holding only ``n`` (reservoir sampling)."""
    keep: list[T] = []
    for seen, item in enumerate(items, start=1):
        if len(keep) < n:
            keep.append(item)
        elif (j := rng.randrange(seen)) < n:
            keep[j] = item
    return keep


def shares(counts: dict[str, int], n: int, draw: Callable[[], float]) -> dict[str, int]:
    """How many of about ``n`` sampled records each namespace in ``counts`` (namespace ->
    records) gives: its share of the total, at least one; a namespace whose share is under one
    record is left out unless ``draw()`` (uniform in [0, 1)) falls under it. Bytewise order."""
    total = sum(counts.values())
    out: dict[str, int] = {}
    for ns in sorted(counts, key=str.encode):
        share = n * counts[ns] / total
        if share >= 1 or draw() < share:
            out[ns] = min(counts[ns], max(1, round(share)))
    return out


class Connector(abc.ABC):
    """One database collection/index, addressed by a URI.

    ``scan`` is the only way vmkit reads a source: it returns up to ``limit`` records after
    ``cursor`` and the cursor that resumes right after them (``None`` once exhausted). Cursors
    are opaque strings that the state store persists.
    """

    scheme: ClassVar[str]
    extra: ClassVar[str] = ""  # pip extra that installs the SDK
    # A user name in the URI is allowed (postgresql://user@host/db: a name, not a secret);
    # a password never is.
    user_in_uri: ClassVar[bool] = False

    def __init__(self, uri: str) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        if parts.password is not None or (parts.username and not self.user_in_uri):
            raise SecretInURI(self.scheme)
        self.params: dict[str, str] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if any(_secret_param(k) for k in self.params):
            raise SecretInURI(self.scheme)

    capabilities: Capabilities = Capabilities()

    def int_param(self, name: str, default: int, low: int, high: int | None = None) -> int:
        """URI option ``name`` as a whole number in [low, high], or a ConfigError naming it."""
        raw = self.params.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{self.scheme}:// option {name} must be a whole number {bound}, got {raw!r}")
        return value

    @abc.abstractmethod
    def describe(self) -> CollectionInfo | None:
        """Collection info, or None when it does not exist."""

    @abc.abstractmethod
    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]: ...

    @abc.abstractmethod
    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        """The records with these ids that exist (missing ones are simply absent)."""

    @abc.abstractmethod
    def upsert(self, batch: RecordBatch) -> None:
        """Idempotent write; returns only once the target acknowledged it."""

    @abc.abstractmethod
    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None: ...

    @abc.abstractmethod
    def count(self) -> int: ...

    def namespace_problem(self, namespace: str) -> str | None:
        """Why this target cannot hold a namespace of that name (the planner makes it a plan
        error before any write), or None. Targets with naming rules override it."""
        return None

    def target_findings(self) -> list[dict[str, Any]]:
        """What the plan must say about this existing collection as a target (PlanWarning
        fields; severity "error" stops the plan before any write), e.g. a Milvus collection
        that assigns its own ids. Connectors with such rules override it."""
        return []

    def namespace_counts(self) -> dict[str, int]:
        """The source's own record count per namespace (tenant, partition; ``""`` for a
        collection without them): what the records read are reconciled with. Connectors whose
        describe() does not say override it."""
        info = self.describe()
        if info is None:
            return {}
        return dict(info.namespaces) if info.namespaces else {"": info.count}

    @abc.abstractmethod
    def create(self, spec: TargetSpec) -> None: ...

    @abc.abstractmethod
    def drop(self) -> None: ...

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` records spread over the whole keyspace (not the first page).

        This default reads everything once (reservoir sampling); connectors that can seek or
        sample natively override it.
        """
        def rows() -> Iterator[tuple[RecordBatch, int]]:
            cursor = None
            while True:
                batch, cursor = self.scan(cursor, 1000)
                yield from ((batch, row) for row in range(len(batch)))
                if cursor is None:
                    return

        keep = reservoir(rows(), n, random.Random(seed))
        by_batch: dict[int, tuple[RecordBatch, list[int]]] = {}
        for batch, row in keep:
            by_batch.setdefault(id(batch), (batch, []))[1].append(row)
        return [b.take(rows) for b, rows in by_batch.values()]

    def digests(self, **hash_opts: Any) -> Iterator[tuple[tuple[str, RecordId], bytes]]:
        """((namespace, id), content digest) for every record: what full verification
        compares (``hash_opts`` as for ``fingerprint.batch_digests``). Targets that keep
        fingerprints themselves override it."""
        from vmkit.core.fingerprint import batch_digests

        cursor = None
        while True:
            batch, cursor = self.scan(cursor, 1000)
            yield from batch_digests(batch, **hash_opts)
            if cursor is None:
                return

    # -- scale-out (vmkit.migration.distributed) -------------------------------------------
    def partitions(self, n: int) -> list[Partition] | None:
        """About ``n`` parts of this source that ``scan_partition`` reads independently, or
        None when it cannot be split (the whole source is then one partition)."""
        return None

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        """``scan``, within one of this connector's partitions, with that partition's cursor."""
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        raise ConfigError(f"{self.scheme}:// cannot read partition {part.key!r}: it does not make partitions")

    def single_process(self) -> str | None:
        """Why this store can be opened by one process only (an embedded engine locking its
        directory, an in-process store), or None: the Dask executor refuses such stores."""
        return None

    def share_limits(self, processes: int) -> None:  # noqa: B027 - optional hook
        """This connector is one of ``processes`` working on the same store at once: rate limits
        that belong to the whole index are divided among them (Pinecone)."""

    def settle_limits(self) -> None:  # noqa: B027 - optional hook
        """Return once the requests this process made no longer count against the store's rate
        limits, before other processes, each pacing at its share, take them over (Pinecone)."""

    def sibling(self, collection: str) -> "Connector":
        """A connector on another collection of the same database, with the same options
        (connectors whose capabilities say ``collections``)."""
        raise ConfigError(f"{self.scheme}:// cannot address other collections")

    def list_collections(self) -> list[str]:
        """Names of every collection in the same database (connectors with ``collections``)."""
        raise ConfigError(f"{self.scheme}:// cannot list collections")

    def finish_load(self) -> None:  # noqa: B027 - optional hook
        """The bulk copy into this target is done (every batch written, before verification):
        build what is cheaper to build once than to keep up per write (pgvector's index).
        Called again after a resume, so it must be idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and file locks."""

    def __enter__(self) -> "Connector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class ReadOnly:
    """Mixed into a source that cannot be written (synthetic data, an export read in place):
    every write says so, with ``read_only_error()``'s message."""

    def read_only_error(self) -> Exception:
        return TerminalError(f"{type(self).__name__} is a read-only source")

    def upsert(self, batch: RecordBatch) -> None:
        raise self.read_only_error()

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        raise self.read_only_error()

    def create(self, spec: TargetSpec) -> None:
        raise self.read_only_error()

    def drop(self) -> None:
        raise self.read_only_error()
