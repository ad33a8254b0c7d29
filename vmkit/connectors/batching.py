"""Split a batch so every write request stays within a target's record AND byte limits."""

from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch


def json_size(value: object) -> int:
    """Encoded JSON size; values orjson refuses (ints past 64 bits) are measured the slow way."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return len(json.dumps(value, default=str))

RECORD_OVERHEAD = 64  # keys, quotes and separators around each record on the wire


def record_sizes(batch: RecordBatch, caps: Capabilities) -> np.ndarray:
    """Estimated wire bytes per record (vector, sparse, id and metadata)."""
    dense = batch.floats_per_record * caps.wire_bytes_per_float
    sizes = np.full(len(batch), dense + RECORD_OVERHEAD, dtype=np.int64)
    for i, (rid, meta) in enumerate(zip(batch.ids, batch.metadata)):
        sizes[i] += len(str(rid)) + (json_size(meta) if meta else 0)
        sparse = None if batch.sparse is None else batch.sparse[i]
        if sparse is not None:
            sizes[i] += len(sparse.indices) * (4 + caps.wire_bytes_per_float)
    return sizes


def _whole_batch_bytes(batch: RecordBatch, caps: Capabilities) -> int | None:
    """An upper bound for the whole batch from two bulk encodes (no per-record work), or None
    when sparse vectors need a per-record count."""
    if batch.sparse is not None:
        return None
    shared = json_size(batch.metadata) + len(orjson.dumps([str(i) for i in batch.ids]))
    return (batch.floats_per_record * caps.wire_bytes_per_float + RECORD_OVERHEAD) * len(batch) + shared


def split_batch(batch: RecordBatch, caps: Capabilities) -> Iterator[RecordBatch]:
    """Consecutive slices of ``batch``, each within ``caps`` limits.

    A single record larger than the byte limit cannot be written at all: TerminalError names it.
    """
    if len(batch) <= caps.max_batch_records:
        total = _whole_batch_bytes(batch, caps)
        if total is not None and total <= caps.max_batch_bytes:
            yield batch
            return
    sizes = record_sizes(batch, caps)
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if size > caps.max_batch_bytes:
            raise TerminalError(
                f"record {batch.ids[i]!r} needs ~{int(size)} bytes, over the target's "
                f"{caps.max_batch_bytes}-byte request limit"
            )
        if i > start and (i - start >= caps.max_batch_records or used + size > caps.max_batch_bytes):
            yield batch.take(range(start, i))
            start, used = i, 0
        used += int(size)
    if start == 0:
        yield batch
    elif start < len(batch):
        yield batch.take(range(start, len(batch)))
