"""Milvus connector on pymilvus: Milvus Lite in this process, or a Milvus / Zilliz server.

URIs::

    milvus:///abs/file.db?collection=NAME         Milvus Lite (the .db path is a directory)
    milvus://HOST:19530/NAME[?db=D][&secure=true] a server; token from MILVUS_TOKEN

Options: ``pk=varchar`` (default) or ``pk=int64``: the key of a collection vmkit creates.

Records: the primary key is the id (INT64 -> uint ids, VARCHAR -> string ids up to its
max_length); FLOAT_VECTOR fields are dense vectors (several: named vectors, the first as
``first_vector`` picks it), FLOAT16/BFLOAT16 fields are widened to float32 exactly, one
SPARSE_FLOAT_VECTOR field is the sparse vector; every scalar and JSON field, and every dynamic
key, is a metadata key. Partitions are namespaces (``_default`` is ""), and in a collection
with a partition key its values are. Reading is in read.py, writing in write.py, the schema's
meaning in schema.py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector
from vmkit.connectors.milvus import partitions
from vmkit.connectors.milvus.errors import classify
from vmkit.connectors.milvus.read import MilvusReads, literal
from vmkit.connectors.milvus.schema import (
    DEFAULT_PARTITION,
    FROM_MILVUS,
    JSON_MAX_BYTES,
    Layout,
    capabilities,
    findings,
    parse,
    partition_problem,
    target_findings,
)
from vmkit.connectors.milvus.write import MilvusWrites
from vmkit.connectors.partitions import WHOLE, Partition
from vmkit.connectors.shared import SharedHandles, import_sdk
from vmkit.core.errors import ConfigError, TerminalError
from vmkit.core.records import RecordBatch

# Milvus Lite lets one process open a .db directory: one client per real path, counted. The
# engine behind it (milvus_lite/server_manager.py, a gRPC server thread per path) stays up
# until the process exits: stopping it costs a 2 s grace period and a reload, and no other
# process may open the directory meanwhile anyway. Its writes reach the OS before the call
# returns (WAL flush; fsync at close): a killed process loses none, a power cut may.
_LITE: SharedHandles[Any] = SharedHandles(lambda client: client.close())


class MilvusConnector(MilvusReads, MilvusWrites, Connector):
    scheme = "milvus"
    extra = "milvus"
    _base = Capabilities(
        max_batch_records=5000,
        max_batch_bytes=32 * 1024 * 1024,  # half of gRPC's default 64 MB message limit
        metrics=frozenset({"cosine", "euclidean", "dot"}),
        normalizes_cosine=False,  # Milvus Lite gives COSINE vectors back as written (tested)
        sparse=True,
        named_vectors=True,
        namespaces=True,  # partitions
        namespace_ids_shared=True,  # one primary key space across partitions
        metadata_nested=True,
        metadata_null=True,
        metadata_mixed_lists=True,
        metadata_big_ints=True,  # JSON ints up to uint64 come back exact; wider ones are refused
        max_metadata_bytes=JSON_MAX_BYTES,
        wire_bytes_per_float=4,  # gRPC carries float32
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if parts.netloc:  # server
            self.collection = parts.path.strip("/") or self.params.get("collection", "")
            scheme = "https" if self.params.get("secure") == "true" else "http"
            self.location = f"{scheme}://{parts.netloc}"
            self.lite = False
        else:
            self.collection = self.params.get("collection", "")
            self.location = os.path.realpath(parts.path) if parts.path else ""
            self.lite = True
            if not self.location.endswith(".db"):  # pymilvus opens Milvus Lite for *.db URIs only
                raise ConfigError("milvus URI needs a path ending in .db: milvus:///abs/file.db?collection=NAME")
        if not self.collection:
            raise ConfigError("milvus URI needs a collection: milvus:///abs/file.db?collection=NAME "
                              "or milvus://host:19530/NAME")
        self._client: Any = None
        self._forget()

    # -- client lifecycle ------------------------------------------------------------------
    def _sdk(self) -> Any:
        return import_sdk("pymilvus", "pymilvus", "milvus")

    @property
    def client(self) -> Any:
        if self._client is None:
            sdk = self._sdk()
            if self.lite:
                self._client = _LITE.acquire(self.location, lambda: sdk.MilvusClient(self.location))
            else:
                self._client = sdk.MilvusClient(uri=self.location, token=os.environ.get("MILVUS_TOKEN", ""),
                                                db_name=self.params.get("db", ""))
        return self._client

    def partitions(self, n: int) -> list[Partition] | None:
        return partitions.key_ranges(self, n)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self.scan(cursor, limit) if part.key == WHOLE else partitions.scan_range(self, part, cursor, limit)

    def single_process(self) -> str | None:
        return "Milvus Lite opens its file in one process only" if self.lite else None

    def close(self) -> None:
        if self._client is not None:
            if self.lite:
                _LITE.release(self.location)
            else:
                self._client.close()
            self._client = None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified
            raise classify(exc, os.environ.get("MILVUS_TOKEN", "")) from None

    # -- the collection's schema, cached until create/drop -----------------------------------
    def _forget(self) -> None:
        self._layout_cache: Layout | None = None
        self._caps: Capabilities | None = None
        self._parts: list[str] | None = None
        self._values: dict[str, Any] | None = None
        self._is_loaded = False

    def _exists(self) -> bool:
        if self.lite and not os.path.isdir(self.location):
            return False  # opening Milvus Lite would create the directory
        return bool(self._call(self.client.has_collection, self.collection))

    def _layout(self) -> Layout:
        if self._layout_cache is None:
            if not self._exists():
                raise TerminalError(f"milvus collection {self.collection} does not exist")
            layout = parse(self._call(self.client.describe_collection, self.collection), self.collection)
            for index in self._call(self.client.list_indexes, self.collection):
                desc = self._call(self.client.describe_index, self.collection, index)
                metric = FROM_MILVUS.get(str(desc.get("metric_type", "")).upper())
                if metric and desc.get("field_name") in layout.dense:
                    layout.metrics[desc["field_name"]] = metric
            self._layout_cache = layout
        return self._layout_cache

    @property  # type: ignore[override]
    def capabilities(self) -> Capabilities:
        """The existing collection's key and field names, else what ``create`` would make."""
        if self._caps is None:
            layout = self._layout() if self._exists() else None
            self._caps = capabilities(self._base, layout, self.params.get("pk", "varchar"))
            if self.lite:  # one in-process engine: writes one at a time
                self._caps = replace(self._caps, parallel_writes=False)
        return self._caps

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._caps = value

    def _loaded(self) -> None:
        """A reopened collection is released, and queries need it loaded (Milvus Lite too)."""
        if not self._is_loaded:
            self._call(self.client.load_collection, self.collection)
            self._is_loaded = True

    def _partitions(self) -> list[str]:
        if self._parts is None:
            self._parts = list(self._call(self.client.list_partitions, self.collection))
        return self._parts

    def _spaces(self) -> dict[str, Any]:
        """Namespace -> what selects it (partition name, or partition key value); {} when the
        collection has only the default partition."""
        if self._values is None:
            layout = self._layout()
            if layout.partition_key:
                self._loaded()
                self._values = {str(v): v for v in self._key_values(layout)}
            else:
                parts = self._partitions()
                self._values = {} if parts == [DEFAULT_PARTITION] else {
                    ("" if p == DEFAULT_PARTITION else p): p for p in parts}
        return self._values

    def _key_values(self, layout: Layout) -> set[Any]:
        """The partition key's distinct values, read in key-ordered pages (a server refuses
        an empty filter without a limit)."""
        values: set[Any] = set()
        last: Any = None
        while True:
            expr = "" if last is None else f"{layout.pk} > {literal(last)}"
            rows = self._call(self.client.query, self.collection, filter=expr, limit=16_384, iterator="True",
                              reduce_stop_for_best="True", output_fields=[layout.pk, layout.partition_key])
            values.update(r[layout.partition_key] for r in rows)
            if len(rows) < 16_384:
                return values
            last = rows[-1][layout.pk]

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        if not self._exists():
            return None
        self._forget()
        layout = self._layout()
        first = layout.first
        dim = layout.dense[first][1] if first else 0
        counts = self.namespace_counts() if self._spaces() else {}
        return CollectionInfo(
            name=self.collection,
            dimension=dim,
            metric=layout.metrics.get(first, "cosine") if first else "dot",
            count=sum(counts.values()) if counts else self.count(),
            namespaces={k: v for k, v in counts.items() if k or v},
            sparse=layout.sparse is not None,
            vector_name=first if layout.others else "",
            extra_vectors={n: {"dimension": layout.dense[n][1], "metric": layout.metrics.get(n, "cosine")}
                           for n in layout.others},
            skipped_vectors=dict(layout.skipped),
            findings=findings(layout),
        )

    def target_findings(self) -> list[dict[str, Any]]:
        return target_findings(self._layout()) if self._exists() else []

    def count(self) -> int:
        self._loaded()
        rows = self._call(self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def namespace_counts(self) -> dict[str, int]:
        """count(*) per namespace. Milvus Lite counts a whole collection when the filter is
        empty even if partitions are named, so every count carries a filter that holds for
        every record (``pk >= ""`` or ``pk >= 0 or pk < 0``)."""
        spaces = self._spaces()
        if not spaces:
            return {"": self.count()}
        pk = self._layout().pk
        every = f'{pk} >= ""' if not self._layout().pk_is_int else f"{pk} >= 0 or {pk} < 0"
        out: dict[str, int] = {}
        for ns, sel in spaces.items():
            kwargs: dict[str, Any] = {}
            expr = every
            if self._layout().partition_key:
                expr = f"{self._layout().partition_key} == {literal(sel)}"
            else:
                kwargs["partition_names"] = [sel]
            self._loaded()
            rows = self._call(self.client.query, self.collection, filter=expr, output_fields=["count(*)"], **kwargs)
            out[ns] = int(rows[0]["count(*)"])
        return out

    def namespace_problem(self, namespace: str) -> str | None:
        return partition_problem(namespace)
