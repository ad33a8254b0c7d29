"""Reading parts: every byte checked against the manifest's digest before it is parsed, and
the live-row index (which rows of which parts are the records, after replays and deletes).

De-duplication rule: a record is ``(namespace, id)``; when several parts hold one, the part
written last (highest ``seq``, the manifest's order) holds the live record, and within a part
the last row. A replayed batch rewrites its own part (same name, ``connector.part_name``), so
it never leaves two copies; the rule covers an id written again by another batch (a repair).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmkit.core.errors import PlanError

from .layout import pa, schema, schema_problem
from .manifest import Manifest, Part, digest

log = logging.getLogger(__name__)


class Unreadable(Exception):
    """A part that cannot be read as the manifest lists it; the message says why."""


def read_part(root: Path, m: Manifest, part: Part, columns: list[str] | None = None) -> Any:
    """The part's table (``columns`` only), or Unreadable: the file missing, its bytes not the
    ones the manifest's digest names, not Parquet, another schema or another row count."""
    a = pa()
    import pyarrow.parquet as pq

    try:
        data = (root / part.file).read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot be read: {exc.strerror or exc}") from None
    if digest(data) != part.digest:
        raise Unreadable("its content differs from the manifest's digest (changed or truncated)")
    try:
        table = pq.read_table(a.BufferReader(data), columns=columns)
    except (a.ArrowException, OSError) as exc:
        raise Unreadable(f"not a readable Parquet file: {exc}") from None
    problem = schema_problem(table.schema, _subset(schema(m), columns))
    if problem or table.num_rows != part.records:
        raise Unreadable(problem or f"{table.num_rows} rows, the manifest says {part.records}")
    return table


def _read_columns(path: Path, columns: list[str], records: int) -> Any:
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path, columns=columns)
    except (pa().ArrowException, OSError) as exc:
        raise Unreadable(str(exc)) from None
    if t.num_rows != records:
        raise Unreadable(f"{t.num_rows} rows, the manifest says {records}")
    return t


def _subset(sch: Any, columns: list[str] | None) -> Any:
    return sch if columns is None else pa().schema([sch.field(c) for c in columns])


def check_footers(root: Path, m: Manifest) -> None:
    """PlanError naming the first part whose footer is missing or unreadable (a truncated
    file), whose schema is not the layout's or whose row count is not the manifest's. Reads
    footers only: the digests are checked when the bytes are read."""
    import pyarrow.parquet as pq

    want = schema(m)
    for part in m.parts:
        path = root / part.file
        try:
            meta = pq.read_metadata(path)
            problem = schema_problem(meta.schema.to_arrow_schema(), want)
        except (pa().ArrowException, OSError) as exc:
            raise PlanError(f"parquet part {path} cannot be read (truncated or not Parquet): {exc}") from None
        if problem is None and meta.num_rows != part.records:
            problem = f"{meta.num_rows} rows, the manifest says {part.records}"
        if problem:
            raise PlanError(f"parquet part {path} has the wrong schema or size: {problem}")


@dataclass
class LiveIndex:
    """Which rows are live: ``masks[i]`` for part i (None: every row), live counts per namespace."""

    masks: list[np.ndarray | None]
    counts: dict[str, int]


def key_of(namespace: str, rid: Any) -> str:
    """The de-duplication key of a record: int 7 and string "7" differ."""
    return f"{namespace}\x1f{'i' if isinstance(rid, int) else 's'}{rid}"


class KeyCache:
    """Each part's keys, read once (only the id columns): a part's name holds its digest, so
    what is cached for a name never changes."""

    def __init__(self, root: Path, m: Manifest) -> None:
        self.root, self.m = root, m
        self._keys: dict[str, Any] = {}
        self._rows: dict[str, dict[str, int]] = {}

    def keys(self, part: Part) -> Any:
        """The part's keys as an Arrow string array, or None when the part is unreadable."""
        if part.file not in self._keys:
            a = pa()
            pc = a.compute
            cols = ["id"] if self.m.layout == "pinecone" else ["id", "id_uint"]
            try:  # the id columns only: the digest is checked when the whole part is read
                t = _read_columns(self.root / part.file, cols, part.records)
            except Unreadable:
                self._keys[part.file] = None
                return None
            kind = (pc.if_else(pc.is_valid(t.column("id_uint")), "i", "s") if "id_uint" in cols
                    else a.array(["s"] * t.num_rows, a.string()))
            self._keys[part.file] = pc.binary_join_element_wise(
                a.scalar(part.namespace + "\x1f"), kind, t.column("id"), "").combine_chunks()
        return self._keys[part.file]

    def row_of(self, part: Part, key: str) -> int | None:
        """The last row of ``part`` holding ``key`` (dictionaries built per part on demand)."""
        if part.file not in self._rows:
            keys = self.keys(part)
            self._rows[part.file] = {} if keys is None else {k: r for r, k in enumerate(keys.to_pylist())}
        return self._rows[part.file].get(key)

    def forget(self, files: set[str]) -> None:
        for f in files:
            self._keys.pop(f, None)
            self._rows.pop(f, None)


def build_index(m: Manifest, cache: KeyCache) -> LiveIndex:
    """An unreadable part counts as all live (its rows are dead-lettered when scanned)."""
    a = pa()
    keys = [cache.keys(part) for part in m.parts]
    readable = [k for k in keys if k is not None]
    total = sum(len(k) for k in readable)
    masks: list[np.ndarray | None] = [None] * len(m.parts)
    if readable:
        table = a.table({"key": a.chunked_array(readable, a.string()), "pos": a.array(np.arange(total))})
        last = table.group_by("key", use_threads=False).aggregate([("pos", "max")])
        if last.num_rows < total:  # some key is held twice: only its last copy is live
            live = np.zeros(total, bool)
            live[last.column("pos_max").to_numpy()] = True
            start = 0
            for p, k in enumerate(keys):
                if k is not None:
                    masks[p] = live[start:start + len(k)]
                    start += len(k)
    counts: dict[str, int] = {}
    for p, part in enumerate(m.parts):
        mask = masks[p]
        counts[part.namespace] = counts.get(part.namespace, 0) + (part.records if mask is None else int(mask.sum()))
    return LiveIndex(masks, {ns: c for ns, c in counts.items() if c})
