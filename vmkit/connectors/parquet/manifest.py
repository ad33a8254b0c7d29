"""The manifest of a Parquet directory and the atomic file writes everything here relies on.

``vmkit-manifest.json`` lists every part in write order (``seq`` grows with each write) with
its namespace, record count and digest of the file bytes (xxh3-128, the manifest's ``digest``
names it: sha256 ran at 0.6 GB/s here, slower than reading the file). Only parts it lists
are read, so a stray temporary file from a crash is never data. Every file (part or
manifest) is written to a temporary name in the same directory, fsynced, ``os.replace``d
over its final name, and the directory fsynced: a reader sees the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson
import xxhash

from vmkit.core.errors import PlanError

MANIFEST = "vmkit-manifest.json"
FORMAT = "vmkit-parquet"
VERSION = 1
DIGEST = "xxh3_128"
TMP_PREFIX = ".tmp-"  # temporary files: never listed in a manifest, so never read


@dataclass
class Part:
    file: str  # path relative to the directory, "/"-separated
    namespace: str
    records: int
    digest: str  # xxh3_128 hex of the file bytes
    ids_hash: str  # of the batch's (namespace, ids): a replayed batch replaces its own part
    seq: int


@dataclass
class Manifest:
    layout: str
    name: str
    dimension: int
    metric: str
    sparse: bool = False
    vector_name: str = ""
    extra_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    id_kinds: list[str] = field(default_factory=list)  # kinds of the ids written so far
    plan_hash: str = ""  # a connector is not told the plan: left empty unless set by a caller
    parts: list[Part] = field(default_factory=list)
    next_seq: int = 1

    @property
    def namespaces(self) -> list[str]:
        return sorted({p.namespace for p in self.parts}, key=str.encode)

    def to_json(self) -> bytes:
        # orjson writes the Part dataclasses itself: asdict() deep-copies every part on each save
        body = {"format": FORMAT, "version": VERSION, "digest": DIGEST, "namespaces": self.namespaces,
                **{f.name: getattr(self, f.name) for f in fields(self)}}
        return orjson.dumps(body, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> "Manifest":
        try:
            doc = orjson.loads(raw)
            if doc.get("format") != FORMAT or doc.get("version") != VERSION or doc.get("digest") != DIGEST:
                raise ValueError(f"not a {FORMAT} v{VERSION} manifest")
            parts = [Part(**p) for p in doc["parts"]]
            keep = {k: doc[k] for k in ("layout", "name", "dimension", "metric", "sparse", "vector_name",
                                        "extra_vectors", "id_kinds", "plan_hash", "next_seq")}
            return cls(parts=parts, **keep)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise PlanError(f"parquet manifest {where} is not readable: {exc}") from None


def load(root: Path) -> Manifest | None:
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return Manifest.from_json(raw, str(path))


def digest(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def write_atomic(path: Path, data: bytes | memoryview, durable_rename: bool = True) -> None:
    """``data`` at ``path``, all or nothing: a temporary file beside it, fsynced, renamed.
    ``durable_rename=False`` leaves the directory's fsync to a later write in the same
    directory (a part's rename is made durable with the manifest's, which follows it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable_rename:
        sync_dir(path.parent)


def sync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(root: Path, manifest: Manifest) -> None:
    write_atomic(root / MANIFEST, manifest.to_json())
