"""The writing half of MilvusConnector: upsert, delete, create, drop.

Upsert is Milvus's idempotent write (a record with the same key replaces the old one; one key
per collection, across partitions). Requests are cut by vmkit.connectors.batching to stay under
the gRPC message limit (64 MB by default, milvus.io/docs/limitations.md; the connector asks
for half of it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import orjson

from vmkit.connectors.base import DEFAULT_VECTOR, Capabilities, TargetSpec
from vmkit.connectors.batching import split_batch
from vmkit.connectors.milvus.read import literal
from vmkit.connectors.milvus.schema import (
    ABSENT_SPARSE,
    DYNAMIC,
    INT64_MAX,
    PK_FIELD,
    SPARSE_FIELD,
    TO_MILVUS,
    VARCHAR_MAX,
    VECTOR_FIELD,
    Layout,
    partition_problem,
)
from vmkit.core.errors import ConfigError, InvalidData, TerminalError
from vmkit.core.records import RecordBatch, RecordId

# JSON ints pymilvus can encode (it uses orjson: int64 and uint64, no wider).
_INT_RANGE = (-(2**63), 2**64 - 1)


class MilvusWrites:
    """The writing half of MilvusConnector."""

    if TYPE_CHECKING:  # provided by MilvusConnector (connector.py)
        collection: str
        capabilities: Capabilities
        params: dict[str, str]

        @property
        def client(self) -> Any: ...
        def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...
        def _layout(self) -> Layout: ...
        def _forget(self) -> None: ...
        def _partitions(self) -> list[str]: ...
        def _loaded(self) -> None: ...
        def _sdk(self) -> Any: ...

    def upsert(self, batch: RecordBatch) -> None:
        layout = self._layout()
        if layout.auto_id:  # refused before anything is sent: Milvus would assign new keys
            raise TerminalError(f"milvus collection {self.collection}: primary key '{layout.pk}' is auto_id, so "
                                "Milvus would give every record a new id (re-runs duplicate, verification "
                                "cannot match); create the collection without auto_id")
        if not len(batch):
            return
        partition = self._partition_for(batch.namespace, layout)
        fields = self._vector_fields(batch, layout)
        for part in split_batch(batch, self.capabilities):
            rows = self._rows(part, layout, fields)
            self._call(self.client.upsert, self.collection, rows, partition_name=partition)

    def _partition_for(self, namespace: str, layout: Layout) -> str | None:
        if not namespace or layout.partition_key:
            return None  # a partition-key collection places records by the key field
        problem = partition_problem(namespace)
        if problem:
            raise TerminalError(f"milvus: namespace {namespace!r} cannot be a partition: {problem}")
        if namespace not in self._partitions():
            self._call(self.client.create_partition, self.collection, namespace)
            self._partitions().append(namespace)
        return namespace

    def _vector_fields(self, batch: RecordBatch, layout: Layout) -> dict[str, str]:
        """Batch vector name -> the collection's field it goes to."""
        names = list(batch.dense_vectors()) if batch.dimension or batch.named else []
        out: dict[str, str] = {}
        for name in names:
            if name in layout.dense:
                out[name] = name
            elif (name in ("", DEFAULT_VECTOR) or len(names) == 1) and layout.first and layout.first not in out.values():
                out[name] = layout.first
            else:
                raise TerminalError(f"milvus collection {self.collection} has no vector field for the records' "
                                    f"vector {name or DEFAULT_VECTOR!r} (fields: {sorted(layout.dense)})")
        lacking = sorted(set(layout.dense) - set(out.values()))
        if lacking:
            raise TerminalError(f"milvus collection {self.collection} needs vector fields {lacking} the records "
                                "do not carry")
        return out

    def _rows(self, batch: RecordBatch, layout: Layout, fields: dict[str, str]) -> list[dict[str, Any]]:
        reserved = {layout.pk, *layout.vector_fields, *layout.skipped, DYNAMIC}
        dense = batch.dense_vectors()
        try:  # pymilvus encodes JSON with orjson: if the whole batch encodes, every int fits
            orjson.dumps(batch.metadata)
            wide_ints = False
        except orjson.JSONEncodeError:
            wide_ints = True
        rows: list[dict[str, Any]] = []
        for i, rid in enumerate(batch.ids):
            row: dict[str, Any] = {}
            for key, value in batch.metadata[i].items():
                if key in reserved:
                    raise InvalidData(f"record {rid!r}: metadata key '{key}' is a reserved field of the collection")
                if key not in layout.scalars and not layout.dynamic:
                    raise InvalidData(f"record {rid!r}: metadata key '{key}' has no field and the collection "
                                      "has no dynamic field")
                if wide_ints:
                    _check_ints(rid, key, value)
                row[key] = value
            row[layout.pk] = self._key(rid, layout)
            for name, field in fields.items():
                row[field] = dense[name][i]  # float32 rows: pymilvus packs them without a copy to lists
            if layout.sparse:
                sp = None if batch.sparse is None else batch.sparse[i]
                row[layout.sparse] = ABSENT_SPARSE if sp is None else dict(zip(sp.indices.tolist(), sp.values.tolist()))
            if layout.partition_key and batch.namespace and layout.partition_key not in row:
                row[layout.partition_key] = batch.namespace
            rows.append(row)
        return rows

    def _key(self, rid: RecordId, layout: Layout) -> RecordId:
        if layout.pk_is_int:
            if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= INT64_MAX:
                raise InvalidData(f"record {rid!r}: id does not fit the collection's INT64 key '{layout.pk}' "
                                  f"(0..2**63-1)")
        elif not isinstance(rid, str):
            raise InvalidData(f"record {rid!r}: the collection's key '{layout.pk}' is VARCHAR, the id is not a string")
        elif layout.pk_max_length is not None and len(rid.encode()) > layout.pk_max_length:
            raise InvalidData(f"record {rid!r}: id is {len(rid.encode())} bytes, over the key's max_length "
                              f"{layout.pk_max_length}")
        return rid

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        layout = self._layout()
        keys = [i for i in ids if isinstance(i, int) == layout.pk_is_int and not isinstance(i, bool)]
        if not keys:
            return
        self._loaded()
        expr = f"{layout.pk} in [{', '.join(literal(k) for k in keys)}]"
        partition = namespace if namespace and not layout.partition_key else ""
        if partition and partition not in self._partitions():
            return
        self._call(self.client.delete, self.collection, filter=expr, partition_name=partition or None)

    def create(self, spec: TargetSpec) -> None:
        """A collection with key ``id`` (``pk=varchar``, the default, or ``pk=int64`` on the
        URI), one FLOAT_VECTOR field per vector space (``vector`` when there is one), ``sparse``
        if asked, and a dynamic field for every metadata key; an AUTOINDEX index on each
        vector (Milvus loads a collection only when every vector field has one)."""
        sdk = self._sdk()
        dtype = sdk.DataType
        pk = self.params.get("pk", "varchar")
        if pk not in ("varchar", "int64"):
            raise ConfigError(f"milvus:// option pk must be varchar or int64, got {pk!r}")
        schema = sdk.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        if pk == "int64":
            schema.add_field(PK_FIELD, dtype.INT64, is_primary=True)
        else:
            schema.add_field(PK_FIELD, dtype.VARCHAR, is_primary=True, max_length=VARCHAR_MAX)
        index = self.client.prepare_index_params()
        spaces = spec.vector_spaces() if spec.extra_vectors else (
            {VECTOR_FIELD: (spec.dimension, spec.metric)} if spec.dimension else {})
        for name, (dim, metric) in spaces.items():
            field = name or DEFAULT_VECTOR
            if metric not in TO_MILVUS:
                raise ConfigError(f"milvus has no metric {metric!r} (cosine, euclidean, dot)")
            schema.add_field(field, dtype.FLOAT_VECTOR, dim=int(dim))
            index.add_index(field, index_type="AUTOINDEX", metric_type=TO_MILVUS[metric])
        if spec.sparse:
            schema.add_field(SPARSE_FIELD, dtype.SPARSE_FLOAT_VECTOR)
            index.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        if not spaces and not spec.sparse:
            raise ConfigError("milvus: a collection needs a dense or a sparse vector")
        self._call(self.client.create_collection, self.collection, schema=schema, index_params=index)
        self._forget()

    def drop(self) -> None:
        self._call(self.client.drop_collection, self.collection)
        self._forget()


def _check_ints(rid: RecordId, key: str, value: Any) -> None:
    """InvalidData for an int no JSON encoder of pymilvus takes (past int64 / uint64)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, int) and not isinstance(v, bool):
            if not _INT_RANGE[0] <= v <= _INT_RANGE[1]:
                raise InvalidData(f"record {rid!r}: metadata '{key}' holds the int {v}, outside Milvus's "
                                  "64-bit range")
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return None

