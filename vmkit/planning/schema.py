"""infer_schema(): what the source holds, from a sample spread over its keyspace.

The planner turns this into warnings and policies; a data scientist reads it first
(``Schema`` renders as a table in notebooks and converts to pandas).
"""

from __future__ import annotations

import datetime
import html
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vmkit.connectors.base import Connector
from vmkit.connectors.batching import json_size
from vmkit.core import kernels
from vmkit.core.ids import BadId, id_kind, original_kind
from vmkit.core.records import RecordBatch, RecordId

FLOAT_EXACT = 2**53
EXAMPLES = 3  # example record ids kept per finding


def value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if abs(value) <= FLOAT_EXACT else "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        kinds = {value_kind(v) for v in value}
        if not kinds:
            return "list[empty]"
        return f"list[{kinds.pop()}]" if len(kinds) == 1 else "list[mixed]"
    return type(value).__name__


def has_date(value: Any) -> bool:
    """A date, datetime or time at any depth (JSON targets get them as ISO-8601 text)."""
    if isinstance(value, (datetime.date, datetime.time)):
        return True
    if isinstance(value, dict):
        return any(has_date(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_date(v) for v in value)
    return False


def has_uneven_list(value: Any, top: bool = True) -> bool:
    """A list below the top level whose items mix types or hold nulls (a typed target's nested
    arrays hold one type). A top-level list is judged by its own kind, ``list[mixed]``."""
    if isinstance(value, dict):
        return any(has_uneven_list(v, False) for v in value.values())
    if isinstance(value, list):
        if not top and (len({value_kind(v) for v in value}) > 1 or any(v is None for v in value)):
            return True
        return any(has_uneven_list(v, False) for v in value)
    return False


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((depth(v) for v in value), default=0)
    return 0


@dataclass
class FieldStats:
    name: str
    present: int = 0
    types: dict[str, int] = field(default_factory=dict)
    max_depth: int = 0
    max_bytes: int = 0
    examples: dict[str, list[RecordId]] = field(default_factory=dict)  # kind -> record ids
    dates: int = 0  # values holding a date or time at any depth (examples under "dates")
    uneven: int = 0  # values holding, below the top, a list of several types or with nulls

    @property
    def nulls(self) -> int:
        return self.types.get("null", 0)

    def add(self, rid: RecordId, value: Any) -> None:
        self.present += 1
        kind = value_kind(value)
        self.types[kind] = self.types.get(kind, 0) + 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < EXAMPLES:
            ex.append(rid)
        self.max_depth = max(self.max_depth, depth(value))
        if isinstance(value, (dict, list)) and has_uneven_list(value):
            self.uneven += 1
        if has_date(value):
            self.dates += 1
            dated = self.examples.setdefault("dates", [])
            if len(dated) < EXAMPLES:
                dated.append(rid)
        if isinstance(value, (str, dict, list)):
            self.max_bytes = max(self.max_bytes, json_size(value))


@dataclass
class Schema:
    source_uri: str
    total: int
    sampled: int
    dimension: int
    dtype: str
    metric: str
    sparse: bool
    sparse_records: int
    namespaces: dict[str, int]
    id_kinds: dict[str, int]
    max_id_length: int
    duplicate_ids: int
    bad_ids: dict[str, list[RecordId]]
    nonfinite_vectors: list[RecordId]
    zero_vectors: list[RecordId]
    metadata_bytes_max: int
    metadata_bytes_p99: int
    fields: dict[str, FieldStats]
    # How long drawing the sample took. Not a read rate: sources sample by queries, seeks or
    # a whole read, so it says nothing of how fast a scan goes (the run's progress does).
    sample_seconds: float
    id_examples: dict[str, list[RecordId]] = field(default_factory=dict)
    # Kinds of the ids records had before an earlier migration mapped them (the original kept
    # in metadata): a copy onward may restore them, so they count when ids could collide.
    original_id_kinds: dict[str, int] = field(default_factory=dict)
    # The sampled records themselves (not serialized): the planner dry-runs them.
    sample_batches: list[RecordBatch] = field(default_factory=list, repr=False, compare=False)

    def to_pandas(self) -> Any:
        import pandas as pd

        rows = [{
            "field": f.name, "present": f.present, "null_rate": f.nulls / max(1, self.sampled),
            "types": ", ".join(f"{k}:{v}" for k, v in sorted(f.types.items())),
            "max_depth": f.max_depth, "max_bytes": f.max_bytes,
        } for f in self.fields.values()]
        return pd.DataFrame(rows, columns=["field", "present", "null_rate", "types", "max_depth", "max_bytes"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("sample_batches")
        return d

    def lines(self) -> list[str]:
        out = [
            f"schema of {self.source_uri}: {self.sampled} of {self.total} records sampled"
            + (f" in {self.sample_seconds:.1f} s" if self.sample_seconds else ""),
            f"  vectors: dim {self.dimension} {self.dtype} metric {self.metric}"
            + (f"; sparse in {self.sparse_records}" if self.sparse else ""),
            "  ids: " + ", ".join(f"{k} {v}" for k, v in sorted(self.id_kinds.items()))
            + f"; max length {self.max_id_length}; {self.duplicate_ids} duplicates",
            f"  metadata bytes: max {self.metadata_bytes_max}, p99 {self.metadata_bytes_p99}",
        ]
        if any(self.namespaces):
            out.append("  namespaces: " + ", ".join(f"{k or '(default)'} {v}" for k, v in self.namespaces.items()))
        if self.nonfinite_vectors or self.zero_vectors:
            out.append(f"  vectors with NaN/Inf: {len(self.nonfinite_vectors)}; all-zero: {len(self.zero_vectors)}")
        for f in self.fields.values():
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(f.types.items()))
            out.append(f"  field {f.name!r}: {kinds}" + (f"; depth {f.max_depth}" if f.max_depth else ""))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        head = "".join(f"<div>{html.escape(line)}</div>" for line in self.lines()[:5])
        return f"<div style='font-family:monospace'>{head}</div>{self.to_pandas().to_html(index=False)}"


def infer_schema(source: Connector, sample: int = 2000, seed: int = 0) -> Schema:
    """Profile ``sample`` records drawn across the source's keyspace."""
    info = source.describe()
    if info is None:
        raise ValueError(f"source {source.uri} does not exist")
    started = time.monotonic()
    batches = source.sample(sample, seed)
    elapsed = time.monotonic() - started
    return profile(source.uri, info.count, info.metric, info.namespaces, batches, elapsed)


def profile(uri: str, total: int, metric: str, namespaces: dict[str, int],
            batches: list[RecordBatch], elapsed: float = 0.0) -> Schema:
    fields: dict[str, FieldStats] = {}
    kinds: Counter[str] = Counter()
    originals: Counter[str] = Counter()
    id_examples: dict[str, list[RecordId]] = {}
    bad_ids: dict[str, list[RecordId]] = {}
    seen: Counter[tuple[str, str]] = Counter()
    sizes: list[int] = []
    nonfinite: list[RecordId] = []
    zero: list[RecordId] = []
    dims: Counter[int] = Counter()
    sparse_records, max_len = 0, 0
    for batch in batches:
        if len(batch):
            dims[batch.dimension] += len(batch)
            nonfinite += [batch.ids[i] for i in np.flatnonzero(kernels.nonfinite_rows(batch.vectors))]
            zero += [batch.ids[i] for i in np.flatnonzero(kernels.zero_rows(batch.vectors))]
        for i, rid in enumerate(batch.ids):
            try:
                kind = id_kind(rid)
            except BadId as exc:
                bad_ids.setdefault(str(exc), []).append(rid)
                continue
            kinds[kind] += 1
            ex = id_examples.setdefault(kind, [])
            if len(ex) < EXAMPLES:
                ex.append(rid)
            max_len = max(max_len, len(str(rid)))
            seen[(batch.namespace, str(rid))] += 1
            meta = batch.metadata[i]
            if (before := original_kind(meta)) is not None:
                originals[before] += 1
            sizes.append(json_size(meta))
            for key, value in meta.items():
                fields.setdefault(key, FieldStats(key)).add(rid, value)
            if batch.sparse is not None and batch.sparse[i] is not None:
                sparse_records += 1
    sampled = sum(len(b) for b in batches)
    return Schema(
        source_uri=uri, total=total, sampled=sampled,
        dimension=dims.most_common(1)[0][0] if dims else 0, dtype="float32", metric=metric,
        sparse=sparse_records > 0, sparse_records=sparse_records, namespaces=dict(namespaces),
        id_kinds=dict(kinds), max_id_length=max_len,
        duplicate_ids=sum(c - 1 for c in seen.values() if c > 1), bad_ids=bad_ids,
        nonfinite_vectors=nonfinite[:EXAMPLES * 10], zero_vectors=zero[:EXAMPLES * 10],
        metadata_bytes_max=max(sizes, default=0),
        metadata_bytes_p99=int(np.percentile(sizes, 99)) if sizes else 0,
        fields=dict(sorted(fields.items(), key=lambda kv: str(kv[0]))), sample_seconds=round(elapsed, 3),
        id_examples=id_examples, original_id_kinds=dict(originals), sample_batches=batches,
    )
