"""Arrow schemas of the two layouts written here, and RecordBatch <-> Arrow table conversion.

vmkit layout (every record vmkit can carry, exactly):

- ``namespace`` string; ``id`` string (an int id as its decimal text) and ``id_uint`` uint64,
  set only for int ids, so int 7 and string "7" stay apart and 2**64-1 round-trips exactly;
- ``values`` fixed_size_list<float32>[dimension] (the vector the manifest names ``vector_name``);
  ``vector.NAME`` the same for each other named vector;
- ``sparse_indices`` list<uint32> and ``sparse_values`` list<float32>, null without one;
- ``metadata`` JSON text (orjson: ints up to 64 bits exact, unicode, nesting and nulls kept).

pinecone layout, as Pinecone's bulk import reads it (docs.pinecone.io/guides/index-data/import-data,
"Parquet file format"): ``id`` STRING, ``values`` LIST<FLOAT>, ``sparse_values``
STRUCT<indices: LIST<UINT32>, values: LIST<FLOAT>> (nullable; sparse and hybrid indexes only),
``metadata`` STRING holding a JSON object, NULL where a record has none.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import orjson

from vmkit.connectors.shared import import_sdk
from vmkit.core.errors import InvalidData
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, RecordId, Rejection, SparseVector

from .manifest import Manifest

NAMED_PREFIX = "vector."


def pa() -> Any:
    """pyarrow, with its compute and parquet modules loaded (``pyarrow`` alone loads neither)."""
    import_sdk("pyarrow.compute", "pyarrow", "parquet")
    import_sdk("pyarrow.parquet", "pyarrow", "parquet")
    return import_sdk("pyarrow", "pyarrow", "parquet")


def schema(m: Manifest) -> Any:
    """The columns every part of a directory with manifest ``m`` holds."""
    a = pa()
    f32 = a.float32()
    if m.layout == "pinecone":
        fields = [a.field("id", a.string(), nullable=False), a.field("values", a.list_(f32), nullable=False)]
        if m.sparse:
            fields.append(a.field("sparse_values", a.struct([("indices", a.list_(a.uint32())),
                                                             ("values", a.list_(f32))])))
        return a.schema([*fields, a.field("metadata", a.string())])
    fields = [a.field("namespace", a.string(), nullable=False), a.field("id", a.string(), nullable=False),
              a.field("id_uint", a.uint64()),
              a.field("values", a.list_(f32, m.dimension), nullable=False)]
    fields += [a.field(NAMED_PREFIX + name, a.list_(f32, int(v["dimension"])), nullable=False)
               for name, v in sorted(m.extra_vectors.items())]
    if m.sparse:
        fields += [a.field("sparse_indices", a.list_(a.uint32())), a.field("sparse_values", a.list_(f32))]
    return a.schema([*fields, a.field("metadata", a.string(), nullable=False)])


def schema_problem(found: Any, want: Any) -> str | None:
    """Why a part's schema (from its footer) cannot be read as ``want``, or None."""
    for f in want:
        idx = found.get_field_index(f.name)
        if idx < 0:
            return f"column {f.name!r} is missing"
        if not found.field(idx).type.equals(f.type):
            return f"column {f.name!r} is {found.field(idx).type}, expected {f.type}"
    return None


def to_table(batch: RecordBatch, m: Manifest) -> Any:
    a = pa()
    n, sch = len(batch), schema(m)
    cols: dict[str, Any] = {}
    kinds = id_kinds(batch.ids)
    if kinds == {"string"}:  # one pass over the types, not per id: these are the hot path
        ids, uints = batch.ids, a.nulls(n, a.uint64())
    elif kinds == {"uint"}:
        ids, uints = list(map(str, batch.ids)), a.array(batch.ids, a.uint64())
    else:
        ids = [rid if isinstance(rid, str) else str(rid) for rid in batch.ids]
        uints = a.array([None if isinstance(rid, str) else rid for rid in batch.ids], a.uint64())
    if m.layout != "pinecone":
        cols["namespace"] = a.array([batch.namespace] * n, a.string())
        cols["id_uint"] = uints
    elif "uint" in kinds:
        raise InvalidData(f"record {next(r for r in batch.ids if not isinstance(r, str))!r}: "
                          "layout=pinecone takes string ids only")
    cols["id"] = a.array(ids, a.string())
    for name, vectors in batch.dense_vectors().items():
        col = "values" if name == batch.vector_name else NAMED_PREFIX + name
        flat = a.array(vectors.reshape(-1), a.float32())
        if m.layout == "pinecone":
            offsets = a.array(np.arange(n + 1, dtype=np.int32) * vectors.shape[1])
            cols[col] = a.ListArray.from_arrays(offsets, flat)
        else:
            cols[col] = a.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    if m.sparse:
        indices, values = _sparse_lists(batch.sparse or [None] * n)
        if m.layout == "pinecone":
            cols["sparse_values"] = a.StructArray.from_arrays([indices, values], ["indices", "values"],
                                                              mask=indices.is_null())
        else:
            cols["sparse_indices"], cols["sparse_values"] = indices, values
    cols["metadata"] = a.array(_json(batch, empty_null=m.layout == "pinecone"), a.string())
    missing = [f.name for f in sch if f.name not in cols]
    if missing:
        raise InvalidData(f"batch lacks {missing} that this parquet directory holds")
    return a.Table.from_arrays([cols[f.name] for f in sch], schema=sch)


def id_kinds(ids: Sequence[RecordId]) -> set[str]:
    """"string" and/or "uint": the kinds of id among ``ids``."""
    return {"string" if issubclass(t, str) else "uint" for t in set(map(type, ids))}


def _sparse_lists(sparse: list[SparseVector | None]) -> tuple[Any, Any]:
    a = pa()
    lens = np.array([0 if s is None else len(s.indices) for s in sparse], dtype=np.int32)
    offsets = a.array(np.concatenate([[0], np.cumsum(lens, dtype=np.int32)]).astype(np.int32))
    mask = a.array([s is None for s in sparse])
    live = [s for s in sparse if s is not None]
    idx = np.concatenate([s.indices for s in live]) if live else np.zeros(0, np.uint32)
    val = np.concatenate([s.values for s in live]) if live else np.zeros(0, np.float32)
    return (a.ListArray.from_arrays(offsets, a.array(idx, a.uint32()), mask=mask),
            a.ListArray.from_arrays(offsets, a.array(val, a.float32()), mask=mask))


def _json(batch: RecordBatch, empty_null: bool) -> list[str | None]:
    out: list[str | None] = []
    for rid, meta in zip(batch.ids, batch.metadata):
        if empty_null and not meta:
            out.append(None)
            continue
        try:
            out.append(orjson.dumps(meta).decode())
        except (orjson.JSONEncodeError, TypeError) as exc:  # ints past 64 bits, odd types
            raise InvalidData(f"record {rid!r}: metadata not storable as JSON: {exc}") from None
    return out


def from_table(table: Any, m: Manifest, namespace: str, file: str, rows: list[int]) -> RecordBatch:
    """The records of ``table`` (rows ``rows`` of part ``file``); a row that cannot
    be read (null id or vector, wrong length, metadata not a JSON object) is rejected naming
    the file and row, never dropped."""
    a = pa()
    n = table.num_rows
    ids: list[Any] = table.column("id").to_pylist()
    if "id_uint" in table.column_names and table.column("id_uint").null_count < n:
        ids = [s if u is None else u for s, u in zip(ids, table.column("id_uint").to_pylist())]
    bad: dict[int, str] = {i: "null id" for i, rid in enumerate(ids) if rid is None}
    dense = {m.vector_name: "values", **{k: NAMED_PREFIX + k for k in sorted(m.extra_vectors)}}
    dims = {m.vector_name: m.dimension, **{k: int(v["dimension"]) for k, v in m.extra_vectors.items()}}
    arrays: dict[str, np.ndarray] = {}
    for name, col in dense.items():
        arr = table.column(col).combine_chunks()
        lengths = a.compute.list_value_length(arr).to_numpy(zero_copy_only=False)
        for j in np.flatnonzero(~(lengths == dims[name])):  # nulls compare False too
            i = int(j)
            bad.setdefault(i, f"column {col}: vector missing or not of dimension {dims[name]}")
        flat = np.zeros((n, dims[name]), np.float32)
        ok = np.flatnonzero(lengths == dims[name])
        if len(ok):
            offs = arr.offsets.to_numpy() if hasattr(arr, "offsets") else (np.arange(n + 1) + arr.offset) * dims[name]
            values = arr.values.to_numpy(zero_copy_only=False)
            if len(ok) == n and offs[-1] - offs[0] == n * dims[name]:  # contiguous: one copy
                flat = values[offs[0]:offs[-1]].reshape(n, dims[name]).astype(np.float32, copy=True)
            else:
                for q in ok:
                    flat[q] = values[offs[q]:offs[q] + dims[name]]
        arrays[name] = flat
    metadata: list[dict[str, Any]] = []
    for r, raw in enumerate(table.column("metadata").to_pylist()):
        try:
            meta = {} if raw is None else orjson.loads(raw)
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            bad.setdefault(r, f"metadata is not a JSON object: {exc}")
            meta = {}
        metadata.append(meta)
    sparse = _sparse_of(table, m, n) if m.sparse else None
    keep = [i for i in range(n) if i not in bad]
    batch = RecordBatch(ids=[ids[i] for i in keep] if bad else ids,
                        vectors=arrays[m.vector_name][keep] if bad else arrays[m.vector_name],
                        metadata=[metadata[i] for i in keep] if bad else metadata,
                        sparse=None if sparse is None else [sparse[i] for i in keep],
                        namespace=namespace,
                        named={k: v[keep] if bad else v for k, v in arrays.items() if k != m.vector_name},
                        vector_name=m.vector_name)
    batch.rejected.extend(unreadable_rows(file, [rows[i] for i in sorted(bad)], namespace,
                                          [bad[i] for i in sorted(bad)], [ids[i] for i in sorted(bad)]))
    return batch


def _sparse_of(table: Any, m: Manifest, n: int) -> list[SparseVector | None]:
    a = pa()
    if m.layout == "pinecone":
        col = table.column("sparse_values").combine_chunks()
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        idx, val = a.compute.struct_field(col, "indices"), a.compute.struct_field(col, "values")
    else:
        idx = table.column("sparse_indices").combine_chunks()
        val = table.column("sparse_values").combine_chunks()
        valid = idx.is_valid().to_numpy(zero_copy_only=False)
    io, vo = idx.offsets.to_numpy(), val.offsets.to_numpy()
    iv, vv = idx.values.to_numpy(zero_copy_only=False), val.values.to_numpy(zero_copy_only=False)
    return [SparseVector(iv[io[i]:io[i + 1]].astype(np.uint32), vv[vo[i]:vo[i + 1]].astype(np.float32))
            if valid[i] else None for i in range(n)]


def unreadable_rows(file: str, rows: list[int], namespace: str, reasons: list[str] | str,
                    ids: list[RecordId | None] | None = None) -> list[Rejection]:
    """Dead-letter rows for rows of ``file`` that cannot be read: the id when it could be read,
    else ``FILE#ROW`` so the dead letter still says where the record was."""
    out = []
    for k, row in enumerate(rows):
        known = ids[k] if ids else None
        rid: RecordId = known if known is not None else f"{file}#{row}"
        why = reasons if isinstance(reasons, str) else reasons[k]
        out.append(Rejection(rid, f"parquet part {file} row {row}: {why}", SOURCE_UNREADABLE, namespace))
    return out
