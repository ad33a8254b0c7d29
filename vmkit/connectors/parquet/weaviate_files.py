"""The files of a Weaviate collection export, listed and checked before anything is read.

What the server writes (weaviate/weaviate ``usecases/export``): ``export_metadata.json``
(``types.go`` ``ExportMetadata``: ``status``, ``classes``, ``shardStatus`` class -> shard ->
``{status, objectsExported, error, skipReason}``) and one ``{class}_{shard}_{range:04d}.parquet``
per key range (``parallel_scan.go``) whose key-value metadata names the ``collection`` and, in a
multi-tenant class, the ``tenant``; the columns are ``parquet_writer.go``'s ``ParquetRow``.
Anything that does not match is a PlanError naming the file or the shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vmkit.core.errors import ConfigError, PlanError

from .layout import pa

METADATA_FILE = "export_metadata.json"


@dataclass
class ExportFile:
    path: Path
    tenant: str
    shard: str
    starts: list[int]  # first row of each row group, then the row count

    @property
    def rows(self) -> int:
        return self.starts[-1]


@dataclass
class ExportListing:
    collection: str
    files: list[ExportFile]  # in (tenant, name) order: the scan order
    skipped: dict[str, str] = field(default_factory=dict)  # shards (tenants) not exported -> why


def list_export(root: Path, collection: str | None) -> ExportListing:
    """The class's files, checked against export_metadata.json: its status, failed shards, and
    each shard's row count against its ``objectsExported`` (the export's own count)."""
    meta = _metadata(root)
    cls = _class(root, meta, collection)
    shards: dict[str, dict[str, Any]] = (meta.get("shardStatus") or {}).get(cls, {})
    failed = {s: v.get("error", "") for s, v in shards.items() if v.get("status") == "FAILED"}
    if failed:
        raise PlanError(f"Weaviate export {root}: shards of {cls} failed to export: {failed}")
    files = [_footer(p, cls) for p in sorted(root.glob(f"{cls}_*.parquet"))]
    rows: dict[str, int] = {}
    for f in files:
        rows[f.shard] = rows.get(f.shard, 0) + f.rows
    for shard, status in shards.items():
        want = int(status.get("objectsExported") or 0)
        if status.get("status") == "SUCCESS" and rows.get(shard, 0) != want:
            raise PlanError(f"Weaviate export {root}: shard {shard} of {cls} has {rows.get(shard, 0)} rows "
                            f"in its files, export_metadata.json says {want} objects were exported "
                            "(a file is missing or foreign)")
    stray = sorted(set(rows) - set(shards))
    if shards and stray:
        raise PlanError(f"Weaviate export {root}: files of shards {stray} that export_metadata.json "
                        f"does not list for {cls}")
    skipped = {s: v.get("skipReason", "") for s, v in shards.items()
               if v.get("status") == "SKIPPED" and v.get("skipReason") != "no data"}
    return ExportListing(cls, sorted(files, key=lambda f: (f.tenant, f.path.name)), skipped)


def _metadata(root: Path) -> dict[str, Any]:
    path = root / METADATA_FILE
    try:
        meta = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise PlanError(f"{root} is not a Weaviate export: no {METADATA_FILE}") from None
    except orjson.JSONDecodeError as exc:
        raise PlanError(f"{path} is not JSON: {exc}") from None
    if meta.get("status") != "SUCCESS":
        raise PlanError(f"Weaviate export {meta.get('id', root)} is {meta.get('status')!r}, not SUCCESS: "
                        f"its files are incomplete ({meta.get('error') or 'no error given'})")
    return meta  # type: ignore[no-any-return]


def _class(root: Path, meta: dict[str, Any], cls: str | None) -> str:
    classes = list(meta.get("classes") or [])
    if cls is None:
        if len(classes) != 1:
            raise ConfigError(f"Weaviate export {root} holds classes {classes}: name one with ?collection=NAME")
        return str(classes[0])
    if cls not in classes:
        raise ConfigError(f"Weaviate export {root} has no class {cls!r} (it has {classes})")
    return cls


def _footer(path: Path, cls: str) -> ExportFile:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except (pa().ArrowException, OSError) as exc:
        raise PlanError(f"Weaviate export file {path} cannot be read (truncated or not Parquet): {exc}") from None
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    problem = _schema_problem(meta.schema.to_arrow_schema())
    if problem is None and kv.get("collection") != cls:
        problem = f"its collection metadata is {kv.get('collection')!r}, not {cls!r}"
    if problem:
        raise PlanError(f"Weaviate export file {path}: {problem}")
    shard = path.name[len(cls) + 1:].rsplit("_", 1)[0]
    starts = np.concatenate([[0], np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])])
    return ExportFile(path, kv.get("tenant", ""), shard, [int(s) for s in starts])


def _schema_problem(found: Any) -> str | None:
    """Why a file's columns are not the export's ``ParquetRow``, or None."""
    a = pa()
    binary = (a.binary(), a.large_binary(), a.string())
    want = {"id": (a.string(), a.large_string()), "vector": (a.binary(), a.large_binary()),
            "named_vectors": binary, "multi_vectors": binary, "properties": binary}
    for name, types in want.items():
        idx = found.get_field_index(name)
        if idx < 0:
            return f"column {name!r} is missing (not a Weaviate export file)"
        if not any(found.field(idx).type.equals(t) for t in types):
            return f"column {name!r} is {found.field(idx).type}, expected {types[0]}"
    return None
