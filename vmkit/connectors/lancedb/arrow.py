"""Records to and from Arrow tables.

A table vmkit creates: ``id`` (string, or uint64 with ``pk=int``), ``vector`` (the first dense
vector, fixed_size_list<float32>), one fixed_size_list<float32> column per other named vector,
and ``metadata``: large_string JSON text. JSON text rather than typed columns because records
may disagree on a key's type, hold nulls, nested objects, lists of mixed types and ints past
2**63; Arrow columns need one type per key and would change or refuse some of them, while the
JSON text round-trips every value exactly (orjson writes the shortest float that reads back).
The schema's metadata (``vmkit``) records the first vector's name, the metric and that vmkit made
the table. Other tables are read as they are: vector columns are fixed-size lists of floats
(float16 widened exactly, float64 kept when exact), every other column is metadata.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson

from vmkit.core.errors import InvalidData
from vmkit.core.records import RecordBatch, RecordId, Rejection

META_COL, VECTOR_COL, ID_COL = "metadata", "vector", "id"
_LONG_DIGITS = re.compile(r"\d{19}")


def vector_columns(schema: Any) -> dict[str, int]:
    """Fixed-size-list float columns -> dimension."""
    import pyarrow as pa

    out = {}
    for f in schema:
        t = f.type
        if pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type):
            out[f.name] = t.list_size
    return out


def schema_for(id_type: str, spaces: dict[str, int], vmkit_meta: dict[str, Any]) -> Any:
    """Schema of a table vmkit creates; ``spaces`` column -> dimension, ``vector`` first."""
    import pyarrow as pa

    fields = [pa.field(ID_COL, pa.uint64() if id_type == "int" else pa.string(), nullable=False)]
    fields += [pa.field(c, pa.list_(pa.float32(), d)) for c, d in spaces.items()]
    fields.append(pa.field(META_COL, pa.large_string()))
    return pa.schema(fields, metadata={b"vmkit": orjson.dumps(vmkit_meta)})


def to_arrow(batch: RecordBatch, schema: Any, columns: dict[str, str]) -> Any:
    """An Arrow table of ``schema``; ``columns`` maps a vector name of the batch to its column."""
    import pyarrow as pa

    metas = []
    for rid, meta in zip(batch.ids, batch.metadata):
        try:
            metas.append(orjson.dumps(meta).decode())
        except orjson.JSONEncodeError:  # ints past 64 bits: the standard library writes them exactly
            try:
                metas.append(json.dumps(meta, allow_nan=False, ensure_ascii=False))
            except (TypeError, ValueError) as exc:
                raise InvalidData(f"record {rid!r} [metadata]: not storable as JSON: {exc}") from None
    arrays: dict[str, Any] = {ID_COL: pa.array(batch.ids, schema.field(ID_COL).type)}
    vectors = batch.dense_vectors()
    for name, col in columns.items():
        vec = vectors[name]
        arrays[col] = pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1), pa.float32()), vec.shape[1])
    arrays[META_COL] = pa.array(metas, pa.large_string())
    return pa.table(arrays, schema=schema)


def from_arrow(table: Any, names: dict[str, str], first: str, vmkit_made: bool) -> RecordBatch:
    """A batch from rows of a table; ``names`` maps a vector column to its vector name, ``first``
    the column that becomes RecordBatch.vectors. A row whose vector is null or not exactly float32
    is a rejection naming it."""
    ids: list[RecordId] = table.column(ID_COL).to_pylist()
    n = len(ids)
    bad: dict[int, tuple[str, str]] = {}
    dense: dict[str, np.ndarray] = {}
    for col, name in names.items():
        arr = table.column(col).combine_chunks()
        dim = arr.type.list_size
        nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, bool)
        values = arr.flatten().to_numpy(zero_copy_only=False) if n else np.zeros(0)
        if arr.null_count:  # flatten() skips null slots
            full = np.zeros((n, dim), values.dtype)
            full[~nulls] = values.reshape(-1, dim)
            values = full
        values = values.reshape(n, dim)
        f32 = values.astype(np.float32)  # float16 widens exactly
        inexact = ~(f32.astype(values.dtype) == values).all(axis=1) if values.dtype == np.float64 else np.zeros(n, bool)
        for i in np.flatnonzero(nulls | inexact):
            bad.setdefault(int(i), (f"vector '{col}' is null" if nulls[i] else
                                    f"vector '{col}' holds float64 values float32 cannot hold exactly", "vector"))
        dense[name] = f32
    metas = _metadata(table, vector_cols=set(names), vmkit_made=vmkit_made, bad=bad)
    keep = [i for i in range(n) if i not in bad]
    rejected = [Rejection(ids[i], f"lancedb row not readable: {why}", field) for i, (why, field) in sorted(bad.items())]
    return RecordBatch([ids[i] for i in keep], dense[names[first]][keep], [metas[i] for i in keep],
                       rejected=rejected, vector_name=names[first] if len(names) > 1 else "",
                       named={v: dense[v][keep] for c, v in names.items() if c != first})


def _metadata(table: Any, vector_cols: set[str], vmkit_made: bool, bad: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    n = table.num_rows
    if vmkit_made:
        out = []
        for i, text in enumerate(table.column(META_COL).to_pylist()):
            try:
                # orjson reads ints past 64 bits as floats: text with such a digit run takes the
                # standard library, which keeps them exact
                out.append({} if not text else json.loads(text) if _LONG_DIGITS.search(text) else orjson.loads(text))
            except ValueError as exc:  # orjson.JSONDecodeError is one
                bad.setdefault(i, (f"metadata is not JSON: {exc}", "metadata"))
                out.append({})
        return out
    cols = [c for c in table.column_names if c != ID_COL and c not in vector_cols]
    values = {c: table.column(c).to_pylist() for c in cols}
    return [{c: values[c][i] for c in cols} for i in range(n)]
