"""Weaviate reads: scanning a collection tenant by tenant in uuid order, sampling it for a
profile (see weaviate_sample), fetching objects by id, and turning objects into RecordBatches.

``WeaviateReads`` is a mixin, as ``WeaviateWrites`` is: ``WeaviateConnector`` (weaviate.py)
inherits it and holds the state and plumbing it uses (declared below for type checking only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vmkit.connectors.base import DEFAULT_VECTOR, Connector
from vmkit.connectors.weaviate import types as wtypes
from vmkit.connectors.weaviate.sample import seek_sample
from vmkit.connectors.weaviate.write import _MAX_IDS, _as_uuid
from vmkit.core.records import RecordBatch, RecordId, Rejection

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from vmkit.connectors.weaviate.scan import TenantScan
    from vmkit.connectors.weaviate.tenants import TenantActivity

log = logging.getLogger("vmkit.connectors.weaviate.connector")


class WeaviateReads:
    """The reading half of WeaviateConnector (see the module docstring)."""

    if TYPE_CHECKING:  # provided by WeaviateConnector (weaviate.py) and WeaviateWrites
        tenant: str | None
        _dim: int | None
        _tenant_scan: TenantScan
        _activity: TenantActivity

        def _coll(self, tenant: str | None = None) -> Any: ...
        def _errors(self, what: str) -> AbstractContextManager[None]: ...
        def _exists(self) -> bool: ...
        def _schema(self) -> dict[str, Any]: ...
        def _tenant_names(self, multi_tenant: bool) -> list[str]: ...
        def _counts(self, multi_tenant: bool) -> dict[str, int]: ...
        def _write_tenant(self, namespace: str) -> str | None: ...
        def _tenant_exists(self, tenant: str) -> bool: ...

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        """Every tenant in uuid order, several at once (see weaviate_scan)."""
        return self._tenant_scan.scan(cursor, limit)

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` records spread over the collection, read as short runs after random
        uuids rather than by reading it all (see weaviate_sample); a collection no bigger than
        ``n`` is read whole."""
        if not self._exists():
            return []
        with self._activity.sampling():  # the tenants a count reads (see weaviate_tenants)
            return self._sample(n, seed)

    def _sample(self, n: int, seed: int) -> list[RecordBatch]:
        facts = self._schema()
        counts = self._counts(facts["mt"])
        if sum(counts.values()) <= n:
            return Connector.sample(cast(Connector, self), n, seed)  # read it whole

        def read_after(tenant: str, after: str, limit: int) -> RecordBatch:
            objects = self._fetch_objects(tenant, facts, "sample", limit=limit, after=after)
            return self._to_batch(objects, facts, tenant)

        batches = seek_sample(counts, n, seed, read_after)
        if sum(map(len, batches)) < n // 2:  # uuids bunched in a corner of their space
            log.info("cursor seeks found %d records: reading the collection for its sample",
                     sum(map(len, batches)))
            return Connector.sample(cast(Connector, self), n, seed)  # read it whole
        return batches

    def _fetch_objects(self, tenant: str, facts: dict[str, Any], what: str,
                       wanted: list[str] | None = None, **query: Any) -> list[Any]:
        """``query.fetch_objects(**query)`` with the vectors in ``wanted`` (default: the ones a
        batch carries), each object's ``vector`` keyed by name (the legacy one as "default").

        A collection with a legacy (unnamed) vector and named vectors added later needs two
        requests: asked for every vector (``include_vector=True``), the server puts the legacy
        one in ``MetadataResult.vector_bytes``, and the SDK then returns that one only
        (``collections/queries/base_executor.py``, ``__extract_vector_for_object``). So the named
        vectors are asked for by name, and the legacy one for the same ids afterwards."""
        wanted = wanted if wanted is not None else [facts["vector"], *facts["others"]]
        legacy = facts["legacy"] and DEFAULT_VECTOR in wanted
        named = [n for n in wanted if not (legacy and n == DEFAULT_VECTOR)]
        include: bool | list[str] = named if facts["named"] and named else True
        with self._activity.awake(tenant):  # an inactive tenant only with tenants=activate
            return self._fetch_awake(tenant, what, include, legacy and bool(named), query)

    def _fetch_awake(self, tenant: str, what: str, include: bool | list[str], legacy: bool,
                     query: dict[str, Any]) -> list[Any]:
        coll = self._coll(tenant or None)
        with self._errors(what):
            objects = list(coll.query.fetch_objects(include_vector=include, **query).objects)
        if not (legacy and objects):
            return objects
        from weaviate.classes.query import Filter

        ids = [str(o.uuid) for o in objects]
        found: dict[str, Any] = {}
        for start in range(0, len(ids), _MAX_IDS):
            chunk = ids[start:start + _MAX_IDS]
            with self._errors(what):
                res = coll.query.fetch_objects(filters=Filter.by_id().contains_any(chunk), limit=len(chunk),
                                               include_vector=True)
            found.update((str(o.uuid), o.vector.get(DEFAULT_VECTOR)) for o in res.objects)
        for o in objects:
            if found.get(str(o.uuid)) is not None:
                o.vector[DEFAULT_VECTOR] = found[str(o.uuid)]
        return objects

    def _to_batch(self, objects: list[Any], facts: dict[str, Any], tenant: str) -> RecordBatch:
        vector, others = facts["vector"], facts["others"]
        if self._dim is None:
            self._dim = next((len(o.vector[vector]) for o in objects if vector in o.vector), 0)
        dims = {n: next((len(o.vector[n]) for o in objects if n in o.vector), 0) for n in others}
        ns = "" if self.tenant else tenant  # a pinned tenant is the whole collection to vmkit
        ids, rows, metas, rejected = [], [], [], []
        named: dict[str, list[Any]] = {n: [] for n in others}
        for o in objects:
            rid = str(o.uuid)
            problems = (f"{why} in '{n}'" for n, d in ((vector, self._dim), *dims.items())
                        if (why := _vector_problem(o.vector.get(n), d)))
            if problem := next(problems, ""):  # a batch holds every vector of every record: report it
                rejected.append(Rejection(rid, problem, "vector", ns))
                continue
            ids.append(rid)
            rows.append(o.vector[vector])
            for n in others:
                named[n].append(o.vector[n])
            metas.append(wtypes.from_weaviate(o.properties))
        vectors = np.asarray(rows, np.float32) if rows else np.zeros((0, self._dim), np.float32)
        batch = RecordBatch(ids=list(ids), vectors=vectors, metadata=metas, namespace=ns,
                            named={n: np.asarray(v, np.float32).reshape(len(ids), dims[n]) for n, v in named.items()},
                            vector_name=vector if others else "")
        batch.rejected.extend(rejected)
        return batch

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        from weaviate.classes.query import Filter

        tenant = self._write_tenant(namespace)
        wanted = [u for u in (_as_uuid(i) for i in ids) if u is not None]
        facts = self._schema()
        if tenant and not self._tenant_exists(tenant):
            wanted = []  # a tenant never written holds nothing (the server would refuse the read)
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), _MAX_IDS):
            chunk = wanted[start:start + _MAX_IDS]
            objects = self._fetch_objects(tenant or "", facts, "fetch",
                                          filters=Filter.by_id().contains_any(chunk), limit=len(chunk))
            found.update((str(o.uuid), o) for o in objects)
        ordered = [found[u] for u in dict.fromkeys(wanted) if u in found]
        return self._to_batch(ordered, facts, namespace)


def _vector_problem(vec: Any, dim: int | None) -> str:
    if vec is None:
        return "no vector"
    if vec and isinstance(vec[0], list):
        return "a multi-vector (ColBERT-style) value"
    return f"vector of length {len(vec)}, expected {dim}" if len(vec) != dim else ""
