"""Records to and from Chroma's columns (ids, embeddings, metadatas, documents).

Chroma 1.5.9 metadata, as tested against the engine (tests/connectors/chroma/test_chroma_values.py):
values are str, int, float, bool or non-empty lists of one of those types; a None value
deletes the key; no nested objects; ints are int64 (2**64-1 comes back as a float); keys may
not be empty or start with '#' or '$' (``#document`` is its internal document key).

A record's document travels as the metadata key ``document`` (DOCUMENT_KEY); on a write a
string under that key becomes the record's document again, so Chroma -> X -> Chroma keeps it.
Floats Chroma would store an ulp off travel with an exact copy (vmkit/connectors/chroma/floats.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from vmkit.connectors.chroma.floats import add_exact, restore_exact
from vmkit.core.errors import InvalidData
from vmkit.core.records import RecordBatch, RecordId, Rejection

DOCUMENT_KEY = "document"
_INT64 = (-(2**63), 2**63 - 1)


def to_batch(got: dict[str, Any], dim: int | None) -> RecordBatch:
    """A ``Collection.get`` answer (include embeddings, metadatas, documents) as a batch; a
    record without an embedding, or of another dimension, is a rejection naming it."""
    ids: list[RecordId] = []
    vectors: list[Any] = []
    metas: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    embeddings = got.get("embeddings")
    documents = got.get("documents") or [None] * len(got["ids"])
    metadatas = got.get("metadatas") or [None] * len(got["ids"])
    for i, rid in enumerate(got["ids"]):
        vec = None if embeddings is None or len(embeddings) <= i else embeddings[i]
        if vec is None or len(vec) == 0 or (dim is not None and len(vec) != dim):
            why = "no embedding stored (documents only?)" if vec is None or len(vec) == 0 else \
                f"embedding of dimension {len(vec)}, the collection's is {dim}"
            rejected.append(Rejection(rid, f"chroma record not readable: {why}", "vector"))
            continue
        meta = restore_exact(dict(metadatas[i] or {}))
        if documents[i] is not None:
            if DOCUMENT_KEY in meta:
                rejected.append(Rejection(rid, f"chroma record has both a document and a metadata key "
                                          f"'{DOCUMENT_KEY}'", f"metadata.{DOCUMENT_KEY}"))
                continue
            meta[DOCUMENT_KEY] = documents[i]
        dim = len(vec)
        ids.append(rid)
        vectors.append(vec)
        metas.append(meta)
    arr = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dim or 0)
    return RecordBatch(ids, arr, metas, rejected=rejected)


def to_columns(batch: RecordBatch) -> dict[str, Any]:
    """``upsert`` keyword arguments for a batch; InvalidData names a record Chroma would refuse."""
    metas: list[dict[str, Any] | None] = []
    docs: list[str | None] = []
    for rid, meta in zip(batch.ids, batch.metadata):
        if not isinstance(rid, str) or not rid:
            raise InvalidData(f"record {rid!r}: chroma ids are non-empty strings")
        meta = dict(meta)
        doc = meta.pop(DOCUMENT_KEY) if isinstance(meta.get(DOCUMENT_KEY), str) else None
        for key, value in meta.items():
            _check(rid, key, value)
        docs.append(doc)
        metas.append(add_exact(meta) or None)
    cols: dict[str, Any] = {"ids": list(batch.ids), "embeddings": batch.vectors}
    if any(m is not None for m in metas):
        cols["metadatas"] = metas
    if any(d is not None for d in docs):
        # never a documents-only record: embeddings are always given, so no embedding function runs
        cols["documents"] = docs
    return cols


def _check(rid: RecordId, key: str, value: Any) -> None:
    where = f"record {rid!r} [metadata.{key}]"
    values: Sequence[Any] = value if isinstance(value, list) else [value]
    if isinstance(value, list) and (not value or len({type(v) for v in value}) > 1):
        raise InvalidData(f"{where}: chroma lists are non-empty and of one type")
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and not _INT64[0] <= v <= _INT64[1]:
            raise InvalidData(f"{where}: integer {v} is outside chroma's int64")
        if isinstance(v, float) and not np.isfinite(v):
            raise InvalidData(f"{where}: NaN or Inf (chroma drops the key)")
        if value is None or not isinstance(v, (str, int, float, bool)):
            raise InvalidData(f"{where}: chroma stores str, int, float, bool or lists of them")
