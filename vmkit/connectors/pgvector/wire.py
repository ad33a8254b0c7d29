"""pgvector's binary formats, whole batches at a time (pgvector src/vector.c, halfvec.c,
sparsevec.c ``*_send``/``*_recv``): vector = int16 dim, int16 unused, dim big-endian float4;
halfvec the same with float2; sparsevec = int32 dim, int32 nnz, int32 unused, nnz int32
indices (0-based), nnz float4 values.

The pgvector package's loaders build one Python object per value; these hand psycopg raw
bytes, and a batch's vectors become one numpy array in one step."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from vmkit.core.records import SparseVector


class RawVector(bytes):
    """A vector already in pgvector's binary ``vector`` format (dumped as it is)."""


def register(conn: Any) -> None:
    """pgvector's types on ``conn`` (pgvector.psycopg.register_vector), then raw bytes in and
    out for ``vector`` and ``halfvec`` and ``sparsevec`` results."""
    from pgvector.psycopg import register_vector
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    register_vector(conn)

    class _Raw(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> bytes:
            return bytes(data)

    for name in ("vector", "halfvec", "sparsevec"):
        info = TypeInfo.fetch(conn, name)
        if info is not None:
            conn.adapters.register_loader(info.oid, _Raw)
    vector_oid = TypeInfo.fetch(conn, "vector").oid  # type: ignore[union-attr]

    class _RawDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    conn.adapters.register_dumper(RawVector, _RawDumper)


def dense_rows(values: list[bytes], half: bool) -> list[np.ndarray]:
    """Each raw vector as float32 (halfvec widened exactly)."""
    dtype = ">f2" if half else ">f4"
    return [np.frombuffer(v, dtype, offset=4).astype(np.float32) for v in values]


def dense_block(values: list[bytes], half: bool) -> np.ndarray | None:
    """All raw vectors as one (n, d) float32 array, or None when their dimensions differ."""
    if not values:
        return None
    size = len(values[0])
    if any(len(v) != size for v in values):
        return None
    width = 2 if half else 4
    flat = np.frombuffer(b"".join(values), np.dtype(">f2" if half else ">f4"))
    rows = flat.reshape(len(values), size // width)
    return np.ascontiguousarray(rows[:, 4 // width:], dtype=np.float32)


def dims(value: bytes) -> int:
    return int(struct.unpack_from(">H", value)[0])


def sparse(value: bytes | None) -> SparseVector | None:
    if value is None:
        return None
    _dim, nnz, _ = struct.unpack_from(">iii", value)
    indices = np.frombuffer(value, ">i4", nnz, 12).astype(np.uint32)
    values = np.frombuffer(value, ">f4", nnz, 12 + 4 * nnz).astype(np.float32)
    return SparseVector(indices, values)


def vector_bytes(block: np.ndarray) -> list[RawVector]:
    """Each row of a float32 (n, d) array in the binary ``vector`` format."""
    n, d = block.shape
    out = np.empty((n, 1 + d), ">f4")
    out[:, 1:] = block
    head = struct.pack(">HH", d, 0)
    raw = out.view(np.uint8).reshape(n, 4 * (1 + d))
    raw[:, :4] = np.frombuffer(head, np.uint8)
    return [RawVector(row.tobytes()) for row in raw]


def sparse_value(sp: SparseVector | None, dim: int) -> Any:
    """A pgvector SparseVector for the sparsevec column (its dimension: the column's, or the
    largest pgvector allows)."""
    if sp is None:
        return None
    from pgvector import SparseVector as PgSparse

    return PgSparse({int(i): float(v) for i, v in zip(sp.indices, sp.values)}, dim)
