"""The Weaviate emulator's collection export: the files a Weaviate 1.37 server writes for
``POST /v1/export/{backend}``, written from the emulator's store the way the server's code
writes them (weaviate/weaviate ``usecases/export``; docs.weaviate.io/deploy/configuration/export):

- ``parquet_writer.go`` ``ParquetRow``: ``id`` string (dictionary-encoded), ``creation_time``
  and ``update_time`` int64, then optional BINARY ``vector`` (little-endian float32 bytes),
  ``named_vectors`` (JSON map name -> floats), ``multi_vectors`` (JSON map name -> list of
  floats lists) and ``properties`` (the object's JSON); zstd; key-value metadata ``collection``
  and, for a multi-tenant class, ``tenant``;
- ``parallel_scan.go``: a shard split into key ranges, one ``{class}_{shard}_{range:04d}.parquet``
  per range holding objects (a range without any writes no file), objects in key (uuid) order;
- ``entities/storobj/export.go``: floats as ``strconv.AppendFloat(f, 'g', -1, 32)`` (the
  shortest text that reads back as the same float32); named vector keys sorted;
- ``types.go`` ``ExportMetadata`` in ``export_metadata.json``: ``status``, ``classes`` and
  ``shardStatus`` class -> shard -> ``{status, objectsExported}`` (``objectsExported`` omitted
  when 0); an inactive tenant is ``SKIPPED`` with a ``skipReason``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MULTI = 2  # base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32: 2 bytes of dimension, then the floats

SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("creation_time", pa.int64(), nullable=False),
    pa.field("update_time", pa.int64(), nullable=False),
    pa.field("vector", pa.binary()),
    pa.field("named_vectors", pa.binary()),
    pa.field("multi_vectors", pa.binary()),
    pa.field("properties", pa.binary()),
])


def _floats(data: bytes) -> str:
    return "[" + ",".join(str(x) for x in np.frombuffer(data, "<f4")) + "]"


def _multi(data: bytes) -> str:
    dim = int.from_bytes(data[:2], "little")
    flat = np.frombuffer(data[2:], "<f4").reshape(-1, dim)
    return "[" + ",".join("[" + ",".join(str(x) for x in row) + "]" for row in flat) + "]"


def _row(obj: Any, legacy: bool) -> dict[str, Any]:
    single = {n: d for n, (t, d) in sorted(obj.vectors.items()) if t != MULTI}
    multi = {n: d for n, (t, d) in sorted(obj.vectors.items()) if t == MULTI}
    vector = single.pop("default", None) if legacy else None
    named = ("{" + ",".join(f"{json.dumps(n)}:{_floats(d)}" for n, d in single.items()) + "}") if single else None
    multis = ("{" + ",".join(f"{json.dumps(n)}:{_multi(d)}" for n, d in multi.items()) + "}") if multi else None
    props = json.dumps(obj.props, sort_keys=True, separators=(",", ":")).encode() if obj.props else None
    return {"id": obj.uuid, "creation_time": obj.created_ms, "update_time": obj.updated_ms, "vector": vector,
            "named_vectors": named and named.encode(), "multi_vectors": multis and multis.encode(),
            "properties": props}


def export_collection(store: Any, cls: str, directory: Path, *, ranges: int = 2, row_group: int = 64,
                      export_id: str = "vmkit-test-export") -> Path:
    """Write the export of class ``cls`` under ``directory/export_id`` and return that path."""
    coll = store.get(cls)
    out = directory / export_id
    out.mkdir(parents=True)
    status: dict[str, dict[str, Any]] = {}
    shards = {t: coll.shards.get(t, {}) for t in sorted(coll.tenants)} if coll.multi_tenant else \
        {"Xq3rT9mL2kVd": coll.shards.get("", {})}  # a single shard has a generated name
    for shard, objects in shards.items():
        if coll.multi_tenant and coll.tenants[shard] not in ("HOT", "ACTIVE"):
            status[shard] = {"status": "SKIPPED", "skipReason": f"tenant is {coll.tenants[shard]}"}
            continue
        keys = sorted(objects)
        bounds = np.linspace(0, len(keys), ranges + 1).astype(int)
        for r in range(ranges):
            chunk = keys[bounds[r]:bounds[r + 1]]
            if not chunk:
                continue
            table = pa.Table.from_pylist([_row(objects[k], coll.legacy) for k in chunk], schema=SCHEMA)
            meta = {"collection": cls, **({"tenant": shard} if coll.multi_tenant else {})}
            pq.write_table(table.replace_schema_metadata(meta), out / f"{cls}_{shard}_{r:04d}.parquet",
                           compression="zstd", row_group_size=row_group)
        status[shard] = {"status": "SUCCESS", **({"objectsExported": len(keys)} if keys else {})}
    metadata = {"id": export_id, "backend": "s3", "startedAt": "2026-12-06T10:00:00Z",
                "completedAt": "2026-12-06T10:00:05Z", "status": "SUCCESS", "classes": [cls],
                "shardStatus": {cls: status}}
    (out / "export_metadata.json").write_text(json.dumps(metadata, indent=2))
    return out
