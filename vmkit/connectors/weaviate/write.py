"""Weaviate writes: everything WeaviateConnector does that changes what the server holds.

Creating and dropping the collection, mapping a namespace to its tenant and creating tenants,
adding properties typed from the data (``_to_property``), inserting objects with per-object
retries of transient failures, and deleting them. They live apart from ``weaviate.py``, which
keeps the SDK plumbing, error mapping and schema facts (the reads are in ``weaviate_read.py``),
so each module has one concern. ``WeaviateWrites`` is a mixin: ``WeaviateConnector`` inherits it and holds the state
and plumbing it uses (declared below for type checking only). ``fetch`` addresses a tenant
through ``_write_tenant``/``_tenant_exists`` and checks ids with ``_as_uuid``, as writes do.
"""

from __future__ import annotations

import logging
import uuid as uuid_lib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vmkit.connectors.base import DEFAULT_VECTOR, TargetSpec
from vmkit.connectors.batching import split_batch
from vmkit.connectors.weaviate import naming as naming
from vmkit.connectors.weaviate import types as wtypes
from vmkit.connectors.weaviate.errors import is_transient_text
from vmkit.core.errors import InvalidData, TerminalError, TransientError
from vmkit.core.records import RecordBatch, RecordId

if TYPE_CHECKING:
    import threading
    from contextlib import AbstractContextManager

    from vmkit.connectors.base import Capabilities

log = logging.getLogger("vmkit.connectors.weaviate.connector")  # the connector's logger, as before the split

# vmkit metric -> the Weaviate distance create() configures (weaviate.py maps back for describe)
TO_DISTANCE = {"cosine": "cosine", "euclidean": "l2-squared", "dot": "dot", "manhattan": "manhattan"}
_MAX_IDS = 1000  # ids per fetch/delete request (filters are kept small)


class WeaviateWrites:
    """The writing half of WeaviateConnector (see the module docstring)."""

    if TYPE_CHECKING:  # provided by WeaviateConnector (weaviate.py)
        capabilities: Capabilities
        collection: str
        tenant: str | None
        vector_name: str | None
        multi_tenancy: bool
        index: str
        object_retries: int
        _lock: threading.RLock
        _facts: dict[str, Any] | None
        _tenants: set[str]
        _dim: int | None

        def _conn(self) -> Any: ...
        def _coll(self, tenant: str | None = None) -> Any: ...
        def _errors(self, what: str) -> AbstractContextManager[None]: ...
        def _exists(self) -> bool: ...
        def _schema(self) -> dict[str, Any]: ...
        def _backoff(self, attempt: int) -> None: ...

    # -- collection -------------------------------------------------------------------------------
    def create(self, spec: TargetSpec) -> None:
        from weaviate.classes.config import Configure, VectorDistances

        if spec.sparse:
            raise TerminalError("Weaviate has no sparse vectors; the plan must drop them")
        if spec.metric not in TO_DISTANCE:
            raise TerminalError(f"Weaviate has no {spec.metric!r} metric (has {sorted(TO_DISTANCE)})")
        if self._exists():
            raise TerminalError(f"weaviate collection {self.collection} already exists")
        if spec.extra_vectors and self.vector_name:
            raise TerminalError(f"the source has {len(spec.extra_vectors) + 1} named vectors; "
                                f"vector={self.vector_name} on the target URI names one: drop it")
        spaces = ({name or DEFAULT_VECTOR: metric for name, (_, metric) in spec.vector_spaces().items()}
                  if spec.extra_vectors else {self.vector_name or DEFAULT_VECTOR: spec.metric})
        if any(m not in TO_DISTANCE for m in spaces.values()):
            raise TerminalError(f"Weaviate has no {sorted(set(spaces.values()) - set(TO_DISTANCE))} metric")

        def index(metric: str) -> Any:
            distance = VectorDistances(TO_DISTANCE[metric])
            return (Configure.VectorIndex.flat(distance_metric=distance) if self.index == "flat"
                    else Configure.VectorIndex.hnsw(distance_metric=distance))

        with self._errors("create"):
            self._conn().collections.create(
                self.collection,
                vector_config=[Configure.Vectors.self_provided(name=name, vector_index_config=index(metric))
                               for name, metric in spaces.items()],
                multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True)
                if self.multi_tenancy or self.tenant else None)
        self._facts, self._dim = None, spec.dimension

    def drop(self) -> None:
        with self._errors("drop"):
            self._conn().collections.delete(self.collection)
        self._facts, self._tenants, self._dim = None, set(), None

    # -- tenants, properties, objects -------------------------------------------------------------
    def _write_tenant(self, namespace: str) -> str | None:
        """The tenant a namespace maps to (the URI's tenant wins), checked against the schema."""
        mt = self._schema()["mt"]
        tenant = self.tenant or namespace
        if not mt:
            if tenant:
                raise TerminalError(
                    f"{self.collection} is not multi-tenant but the batch is in namespace "
                    f"{tenant!r}: map namespaces in the plan, or create with ?multi_tenancy=true")
            return None
        if not tenant:
            raise TerminalError(f"{self.collection} is multi-tenant: records need a namespace "
                                "(tenant) or the URI a tenant=")
        return tenant

    def _tenant_exists(self, tenant: str) -> bool:
        if tenant not in self._tenants:
            with self._errors("check tenant"):
                if self._coll().tenants.exists(tenant):
                    self._tenants.add(tenant)
        return tenant in self._tenants

    def _ensure_tenant(self, tenant: str) -> None:
        if not self._tenant_exists(tenant):
            from weaviate.classes.tenants import Tenant

            with self._errors("create tenant"):
                self._coll().tenants.create([Tenant(name=tenant)])
            self._tenants.add(tenant)

    def _ensure_properties(self, metas: list[dict[str, Any]], ids: list[RecordId]) -> None:
        """Check key names, then add missing properties with types inferred from the data, so
        ints stay ints and strings stay text (the server's auto-schema would guess)."""
        props: dict[str, str] = self._schema()["props"]
        problems: list[str] = []
        stored = {n.lower(): n for n in props}
        for rid, meta in zip(ids, metas):
            for k, v in meta.items():
                why = naming.property_problem(k)
                other = stored.get(k.lower(), k)
                if why is None and other != k:
                    why = f"collides with property '{other}' (names are case-insensitive)"
                why = why or next(iter(naming.nested_problems(v, k)), None) or wtypes.value_problem(v)
                if why:
                    problems.append(f"{k!r} in record {rid}: {why}")
            stored.update({k.lower(): k for k in meta})
        if problems:
            raise InvalidData(f"metadata keys Weaviate cannot store as-is ({len(problems)}): "
                                + "; ".join(problems[:10]) + " (the plan must rename them)")
        specs = wtypes.infer_specs(metas)
        for name, spec in sorted((k, s) for k, s in specs.items() if k not in props):
            try:
                with self._errors("add property"):
                    self._coll().config.add_property(_to_property(name, spec))
            except TerminalError:
                self._facts = None  # another writer may have added it meanwhile
                if name not in self._schema()["props"]:
                    raise
                props = self._schema()["props"]
            props[name] = props.get(name) or str(spec["t"])

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        bad = [i for i in batch.ids if _as_uuid(i) is None]
        if bad:
            raise InvalidData(f"Weaviate ids are UUIDs; {len(bad)} ids are not (e.g. {bad[0]!r}): "
                                "the plan's id policy must map them")
        tenant = self._write_tenant(batch.namespace)
        if tenant:
            self._ensure_tenant(tenant)
        with self._lock:  # one schema change at a time
            self._ensure_properties(batch.metadata, batch.ids)
        for part in split_batch(batch, self.capabilities):
            self._insert(part, tenant)

    def _insert(self, part: RecordBatch, tenant: str | None) -> None:
        from weaviate.classes.data import DataObject

        facts = self._schema()
        if part.named and self.vector_name:
            raise TerminalError(f"records carry {len(part.named) + 1} named vectors but the URI's "
                                f"vector={self.vector_name} names one: drop vector= from the target URI")
        first = self.vector_name or ((part.vector_name or DEFAULT_VECTOR) if part.named else facts["vector"])

        def vectors(i: int) -> Any:
            if not facts["named"]:
                return part.vectors[i].tolist()
            return {first: part.vectors[i].tolist(), **{n: v[i].tolist() for n, v in part.named.items()}}

        pending = list(range(len(part)))
        terminal: dict[str, str] = {}
        transient: dict[str, str] = {}
        for attempt in range(self.object_retries + 1):
            objs = [DataObject(
                uuid=_as_uuid(part.ids[i]),
                properties={k: wtypes.to_weaviate(v, facts["props"].get(k))
                            for k, v in part.metadata[i].items() if v is not None},
                vector=vectors(i)) for i in pending]
            failed = self._insert_many(objs, tenant)
            transient = {}
            for j, reason in failed.items():
                rid = str(part.ids[pending[j]])
                # Temporary per the server (memory, disk pressure, replication): retried, bounded
                target = transient if is_transient_text(reason) else terminal
                target[rid] = reason
            pending = [pending[j] for j in failed if str(part.ids[pending[j]]) in transient]
            if not pending or terminal:
                break
            log.info("weaviate: retrying %d objects after transient failures", len(pending))
            self._backoff(attempt)
        if terminal:
            raise InvalidData(f"weaviate rejected {len(terminal)} objects in {self.collection}: "
                                + "; ".join(f"{k}: {v}" for k, v in list(terminal.items())[:20]))
        if transient:  # one line per reason: an episode fails every object with the same text
            reasons = Counter(transient.values()).most_common(3)
            raise TransientError(f"weaviate: {len(transient)} objects still failing after "
                                 f"{self.object_retries} retries: "
                                 + "; ".join(f"{n} x {reason} (e.g. {next(k for k, v in transient.items() if v == reason)})"
                                             for reason, n in reasons))

    def _insert_many(self, objs: list[Any], tenant: str | None) -> dict[int, str]:
        """Index -> server reason for every object that failed inside the batch."""
        from weaviate.exceptions import WeaviateInsertManyAllFailedError

        with self._errors("insert"):
            try:
                res = self._coll(tenant).data.insert_many(objs)
            except WeaviateInsertManyAllFailedError as exc:  # raised without per-index detail
                reasons = str(exc).split("errors: ", 1)[-1].strip().replace("\n", " | ")
                return {j: reasons for j in range(len(objs))}
        return {j: err.message for j, err in res.errors.items()}

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        from weaviate.classes.query import Filter

        tenant = self._write_tenant(namespace)
        wanted = [u for u in (_as_uuid(i) for i in ids) if u is not None]
        if tenant and not self._tenant_exists(tenant):
            return
        for start in range(0, len(wanted), _MAX_IDS):
            with self._errors("delete"):
                res = self._coll(tenant).data.delete_many(
                    where=Filter.by_id().contains_any(wanted[start:start + _MAX_IDS]))
            if res.failed:
                raise TerminalError(f"weaviate delete on {self.collection}: {res.failed} objects failed")


def _as_uuid(value: Any) -> str | None:
    """Canonical lowercase UUID string, or None unless ``value`` is a UUID in 8-4-4-4-12 form
    (other spellings such as 32 bare hex digits would silently change the id)."""
    if isinstance(value, uuid_lib.UUID):
        return str(value)
    if isinstance(value, str) and len(value) == 36:
        try:
            canonical = str(uuid_lib.UUID(value))
        except ValueError:
            return None
        return canonical if canonical == value.lower() else None
    return None


def _to_property(name: str, spec: dict[str, Any]) -> Any:
    from weaviate.classes.config import DataType, Property

    nested = [_to_property(k, s) for k, s in sorted(spec.get("n", {}).items())] or None
    return Property(name=name, data_type=DataType(spec["t"]), nested_properties=nested)
