"""The writing half of the Parquet connector: one part per upsert (or a few, written side by side), deletes by rewriting parts,
create and drop (the rules are in connector.py's docstring)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from vmkit.connectors.base import TargetSpec
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch, RecordId

from . import manifest as mf
from .layout import id_kinds, pa, to_table
from .manifest import Manifest, Part
from .parts import KeyCache, LiveIndex, Unreadable, key_of

log = logging.getLogger(__name__)

PINECONE_DEFAULT_NS = "__default__"  # the import's sub-directory for the default namespace


class ParquetWrites:
    """Mixed into ParquetConnector, which provides the state below."""

    root: Path
    layout: str
    _lock: threading.RLock
    _m: Manifest | None
    _cache: dict[str, Any]
    _pool: ThreadPoolExecutor | None
    _checked: int

    def _manifest(self, required: bool = True) -> Manifest | None:
        raise NotImplementedError

    def _key_cache(self) -> KeyCache:
        raise NotImplementedError

    def _live(self) -> LiveIndex:
        raise NotImplementedError

    def _table(self, m: Manifest, p: int) -> Any:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- contract: writing -----------------------------------------------------------------
    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        with self._lock:
            m = self._manifest()
            assert m is not None
            if batch.dimension != m.dimension or set(batch.named) != set(m.extra_vectors):
                raise TerminalError(f"records of dimension {batch.dimension} and named vectors "
                                    f"{sorted(batch.named)} do not fit parquet directory {self.root} "
                                    f"({m.dimension}, {sorted(m.extra_vectors)})")
            if self.layout == "pinecone" and (problem := self.namespace_problem(batch.namespace)):
                raise TerminalError(problem)
            ids_hash = hashlib.sha256("\x1e".join(key_of(batch.namespace, r) for r in batch.ids).encode()).hexdigest()
            table = to_table(batch, m)
            pieces = [table.slice(start, stop - start) for start, stop in _pieces(len(batch))]
            if len(pieces) > 1:  # pyarrow writes without the GIL: the files of one batch side by side
                self._pool = self._pool or ThreadPoolExecutor(len(pieces), thread_name_prefix="vmkit-parquet")
                written = list(self._pool.map(lambda t: self._write_part(t, batch.namespace, ids_hash), pieces))
            else:
                written = [self._write_part(table, batch.namespace, ids_hash)]
            replaced = [p for p in m.parts if p.ids_hash == ids_hash and p.namespace == batch.namespace]
            m.parts = [p for p in m.parts if p not in replaced]
            for (file, digest), piece in zip(written, pieces):
                m.parts.append(Part(file, batch.namespace, piece.num_rows, digest, ids_hash, m.next_seq))
                m.next_seq += 1
            m.id_kinds = sorted(set(m.id_kinds) | id_kinds(batch.ids))
            mf.save(self.root, m)
            self._changed()
            self._cache = {file: piece for (file, _), piece in zip(written, pieces)}  # what a read-back asks for
            new_files = {file for file, _ in written}
            for old in replaced:  # after the manifest stopped listing them
                if old.file not in new_files:
                    (self.root / old.file).unlink(missing_ok=True)

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        if not ids:
            return
        with self._lock:
            m = self._manifest()
            assert m is not None
            a = pa()
            gone = a.array([key_of(namespace, r) for r in ids], a.string())
            cache = self._key_cache()
            keep: dict[int, Any] = {}
            for p, part in enumerate(m.parts):
                keys = cache.keys(part)
                if part.namespace != namespace or keys is None:
                    continue
                hit = a.compute.is_in(keys, value_set=gone).to_numpy(zero_copy_only=False)
                if hit.any():
                    keep[p] = ~hit
            self._rewrite(m, keep, "holds ids to delete")

    def _rewrite(self, m: Manifest, keep: dict[int, Any], why: str) -> None:
        """Rewrite part ``p`` with the rows ``keep[p]`` marks (new files, then the manifest,
        then the old files go); a part left with no rows is dropped."""
        if not keep:
            return
        a = pa()
        old_files = []
        for p, mask in keep.items():
            part = m.parts[p]
            try:
                kept = self._table(m, p).filter(a.array(mask))
            except Unreadable as exc:
                raise TerminalError(f"parquet part {part.file} {why} but {exc}") from None
            old_files.append(part.file)
            if kept.num_rows == 0:
                m.parts[p] = None  # type: ignore[call-overload]
                continue
            file, digest = self._write_part(kept, part.namespace, part.ids_hash)
            m.parts[p] = Part(file, part.namespace, kept.num_rows, digest, part.ids_hash, part.seq)
        m.parts = [p for p in m.parts if p is not None]
        mf.save(self.root, m)
        self._changed()
        live = {p.file for p in m.parts}
        for f in old_files:
            if f not in live:
                (self.root / f).unlink(missing_ok=True)

    def finish_load(self) -> None:
        """Remove what a crash left behind: temporary files, and part files the manifest does
        not list (a part renamed into place just before a kill, its manifest never written);
        and rewrite parts holding rows a newer part replaced (an id written again by another
        batch: a repair). Pinecone's import reads every row of every ``.parquet`` under a
        namespace directory, so neither may stay there."""
        with self._lock:
            m = self._manifest(required=False)
            if m is None:
                return
            index = self._live()
            self._rewrite(m, {p: mask for p, mask in enumerate(index.masks)
                              if mask is not None and not mask.all()}, "holds rows a newer part replaced")
            listed = {p.file for p in m.parts}
            dirs = [self.root, *(d for d in self.root.iterdir() if d.is_dir())]
            for d in dirs:
                for f in d.iterdir():
                    rel = f.relative_to(self.root).as_posix()
                    stray = f.name.startswith(mf.TMP_PREFIX) or (
                        f.name.startswith("part-") and f.suffix == ".parquet" and rel not in listed)
                    if f.is_file() and stray:
                        log.info("parquet: removing %s, left by an interrupted write", rel)
                        f.unlink(missing_ok=True)

    def create(self, spec: TargetSpec) -> None:
        with self._lock:
            if self._manifest(required=False) is not None:
                raise TerminalError(f"parquet directory {self.root} already holds a collection")
            if self.root.exists() and any(not c.name.startswith(mf.TMP_PREFIX) for c in self.root.iterdir()):
                raise TerminalError(f"parquet directory {self.root} is not empty and holds no vmkit manifest")
            if self.layout == "pinecone" and spec.extra_vectors:
                raise TerminalError("layout=pinecone holds one dense vector per record")
            self.root.mkdir(parents=True, exist_ok=True)
            self._m = Manifest(self.layout, spec.name, spec.dimension, spec.metric, spec.sparse,
                               spec.vector_name, dict(spec.extra_vectors))
            mf.save(self.root, self._m)
            self._changed()

    def drop(self) -> None:
        """Removes the directory only when it holds a vmkit manifest (or nothing)."""
        with self._lock:
            if not self.root.exists():
                return
            if not (self.root / mf.MANIFEST).exists():
                if any(self.root.iterdir()):
                    raise TerminalError(f"parquet directory {self.root} holds no vmkit manifest: not removed")
                self.root.rmdir()
            else:
                shutil.rmtree(self.root)
            self.close()
            self._checked = -1

    def namespace_problem(self, namespace: str) -> str | None:
        if self.layout != "pinecone":
            return None
        if "/" in namespace or namespace.startswith(".") or namespace == PINECONE_DEFAULT_NS:
            return (f"namespace {namespace!r} cannot be a sub-directory of a Pinecone import "
                    f"('/', a leading '.', or {PINECONE_DEFAULT_NS!r}, the default namespace's)")
        return None

    def _write_part(self, table: Any, namespace: str, ids_hash: str) -> tuple[str, str]:
        """Write ``table`` as a part: pyarrow writes a temporary file beside its final place
        (straight to the file: through an in-memory buffer it was slower), the bytes are read
        back for the digest, fsynced, and renamed to the name the digest completes. The
        directory's fsync comes with the manifest's when they share it. Returns (file, digest)."""
        import pyarrow.parquet as pq

        folder = (self.root / self._part_path(namespace, ids_hash, "")).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=mf.TMP_PREFIX, dir=folder)
        os.close(fd)
        try:
            with pa().OSFile(tmp, "wb") as out:
                pq.write_table(table, out, **write_options(table.column_names))
            with open(tmp, "rb") as f:
                digest = mf.digest(f.read())
                os.fsync(f.fileno())
            file = self._part_path(namespace, ids_hash, digest)
            os.replace(tmp, self.root / file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if folder != self.root:
            mf.sync_dir(folder)
        return file, digest

    def _part_path(self, namespace: str, ids_hash: str, digest: str) -> str:
        name = f"part-{ids_hash[:24]}-{digest[:12]}.parquet"
        if self.layout == "pinecone":  # one sub-directory per namespace (the import's layout)
            return f"{namespace or PINECONE_DEFAULT_NS}/{name}"
        return name  # beside the manifest: one directory fsync makes both renames durable


def write_options(columns: Sequence[str]) -> dict[str, Any]:
    """``pq.write_table`` options: pyarrow's codec (snappy), but no dictionary encoding or
    min/max statistics on vector and metadata columns: pyarrow tries a dictionary for every
    column by default, which for float vectors is a larger file written four times slower
    (28 ms against 7 ms per 1,000 x 768 here)."""
    return {"use_dictionary": [c for c in columns if c == "namespace"],
            "write_statistics": [c for c in columns if c in ("namespace", "id", "id_uint")]}


PIECE_ROWS = 4096  # an upsert of more rows is written as several files, side by side


def _pieces(rows: int) -> list[tuple[int, int]]:
    """Row ranges of the files one upsert writes: as many as there are cores (at most), each at
    least PIECE_ROWS rows. A replayed batch replaces every file of its first write (they share
    its ids hash), however it is split this time."""
    k = max(1, min(os.cpu_count() or 1, rows // PIECE_ROWS))
    bounds = [rows * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
