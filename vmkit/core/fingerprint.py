"""Canonical content hashing of records, used by full verification and sync.

A record's digest covers its namespace, dense vector bytes (float32, little-endian; with several
named vectors, each under its name), sparse vector and metadata (canonical JSON: sorted keys, so key order never matters, but a type change
such as "1" -> 1 or 1 -> 1.0 does). Targets that store numbers as float64 are compared with
every number as a float on both sides (``numbers_as_float``).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import orjson
import xxhash

from vmkit.core import kernels
from vmkit.core.records import Metadata, RecordBatch, RecordId, SparseVector

Digest = bytes  # 16 bytes


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_metadata(meta: Metadata, numbers_as_float: bool = False) -> bytes:
    if numbers_as_float:
        meta = _floats(meta)
    return orjson.dumps(meta, option=_CANONICAL)


def _floats(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def stored_vectors(vectors: np.ndarray, normalize: bool, keep_unit_rows: bool = False) -> np.ndarray:
    """Vectors as a cosine-normalizing target stores them (unit rows), else unchanged.

    ``keep_unit_rows`` is for vectors read back from such a target: rows already of unit
    length are what it stored and stay as they are (normalizing again could move the last
    bit); other rows are raw vectors it handed back (the embedded Qdrant engine does after a
    reopen) and are normalized the way the source side is."""
    if not normalize:
        return vectors
    if not keep_unit_rows:
        return kernels.normalize_rows(vectors)
    norms = np.sqrt(np.square(vectors, dtype=np.float64).sum(axis=1))
    raw = np.flatnonzero(np.abs(norms - 1.0) > _UNIT_TOLERANCE)
    if not len(raw):
        return vectors
    out = vectors.copy()
    out[raw] = kernels.normalize_rows(vectors[raw])
    return out


_UNIT_TOLERANCE = 1e-5  # |norm - 1| of a float32 unit vector is ~1e-7; raw vectors are far off


def _row_bytes(vectors: np.ndarray, normalize: bool, keep_unit_rows: bool = False) -> tuple[memoryview, int]:
    """The stored rows as one byte buffer (zero-copy when possible) and the width of a row."""
    stored = np.ascontiguousarray(stored_vectors(vectors, normalize, keep_unit_rows), dtype="<f4")
    return stored.reshape(-1).view(np.uint8).data, stored.shape[1] * 4  # fine for empty/0-d rows


def batch_digests(
    batch: RecordBatch, *, normalize: bool = False, numbers_as_float: bool = False,
    normalize_named: frozenset[str] = frozenset(), keep_unit_rows: bool = False,
) -> Iterator[tuple[tuple[str, RecordId], Digest]]:
    """((namespace, id), digest) for every record of the batch.

    Hot path of full verification: rows are zero-copy slices of the vector buffer and each
    record is hashed in one call over (namespace, row, named rows, sparse, canonical metadata).
    ``normalize`` applies to a single-vector batch; with several vectors, ``normalize_named``
    lists those (by name) a cosine-normalizing target stores as unit rows. ``keep_unit_rows``
    hashes vectors read back from the target (see ``stored_vectors``).
    """
    rows, width, named = memoryview(b""), 0, []
    if not batch.named:
        rows, width = _row_bytes(batch.vectors, normalize, keep_unit_rows)
    else:  # several vectors: each hashed under its name, whichever one is first
        named = [(b"\x03" + name.encode() + b"\x00", *_row_bytes(vecs, name in normalize_named, keep_unit_rows))
                 for name, vecs in sorted(batch.dense_vectors().items())]
    prefix = batch.namespace.encode() + b"\x00"
    digest = xxhash.xxh3_128_digest
    sparse = batch.sparse
    if sparse is None and not named and not numbers_as_float:  # the common case, in one expression
        ns, dumps = batch.namespace, orjson.dumps
        yield from (((ns, rid), digest(b"".join((prefix, rows[i * width:(i + 1) * width], b"\x02",
                                                  dumps(meta, option=_CANONICAL)))))
                    for i, (rid, meta) in enumerate(zip(batch.ids, batch.metadata)))
        return
    for i, rid in enumerate(batch.ids):
        sp: SparseVector | None = None if sparse is None else sparse[i]
        tail = b"\x02" + canonical_metadata(batch.metadata[i], numbers_as_float)
        if sp is not None:
            tail = (b"\x01" + sp.indices.astype("<u4").tobytes() + sp.values.astype("<f4").tobytes()
                    + tail)
        row: bytes | memoryview = rows[i * width:(i + 1) * width]
        if named:
            row = b"".join([row, *(p for tag, buf, w in named for p in (tag, buf[i * w:(i + 1) * w]))])
        yield (batch.namespace, rid), digest(b"".join((prefix, row, tail)))


def batch_checksum(batch: RecordBatch) -> str:
    """One checksum over a whole written batch (the ledger's record of what was written):
    ids, vector buffer and metadata hashed in bulk, not per record."""
    h = xxhash.xxh3_64()
    h.update(orjson.dumps([str(i) for i in batch.ids]))
    h.update(_le_f4_bytes(batch.vectors))
    for name, vectors in sorted(batch.named.items()):  # the ledger reads its own writes: order is fixed
        h.update(name.encode())
        h.update(_le_f4_bytes(vectors))
    h.update(orjson.dumps(batch.metadata, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    return h.hexdigest()


def _le_f4_bytes(vectors: np.ndarray) -> memoryview:
    """The vectors' float32 little-endian bytes, without copying when they already are (a copy
    of a 10,000 x 768 batch costs several times the hash)."""
    return np.ascontiguousarray(vectors, dtype="<f4").reshape(-1).view(np.uint8).data
