"""RecordBatch: the columnar unit that flows from a source scan to a target write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, Union

import numpy as np

RecordId = Union[str, int]
Metadata = dict[str, Any]


@dataclass(frozen=True)
class SparseVector:
    indices: np.ndarray  # uint32, strictly increasing
    values: np.ndarray  # float32, same length

    @classmethod
    def of(cls, indices: Sequence[int], values: Sequence[float]) -> "SparseVector":
        idx = np.asarray(indices, dtype=np.uint32)
        val = np.asarray(values, dtype=np.float32)
        order = np.argsort(idx, kind="stable")
        return cls(idx[order], val[order])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(
            np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values)
        )

    def __hash__(self) -> int:
        return hash((self.indices.tobytes(), self.values.tobytes()))


# Rejection.field of a record the source listed but could not hand over (a fetch that never
# returned a listed id, a document that cannot be decoded): counted as read, dead-lettered
# with the reason, and it keeps the migration from ``completed`` unless the user accepts it
# (MigrationOptions.accept_unreadable).
SOURCE_UNREADABLE = "source_unreadable"


@dataclass(frozen=True)
class Rejection:
    """A record that was read but will not be written, and why."""

    record_id: RecordId
    reason: str
    field: str = ""  # the field at fault ("id", "vector", "metadata.price", ...)
    namespace: str = ""

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"record {self.record_id!r}{where}: {self.reason}"


@dataclass
class RecordBatch:
    """Records as columns: ``ids[i]``, ``vectors[i]``, ``metadata[i]``, ``sparse[i]``.

    ``vectors`` is a C-contiguous float32 array of shape (n, d); ``d`` may be 0 for
    sparse-only records. ``namespace`` is the source partition the batch came from.
    Records with several dense vectors (Weaviate and Qdrant named vectors) carry the first in
    ``vectors`` under the name ``vector_name`` and the others in ``named`` (name -> (n, d_name)
    array); a single-vector batch has ``vector_name == ""`` and no ``named``.
    ``rejected`` holds records a source read but could not represent (e.g. a vector of the
    wrong dimension): they count as read, and end in the dead-letter table.
    """

    ids: list[RecordId]
    vectors: np.ndarray
    metadata: list[Metadata]
    sparse: list[SparseVector | None] | None = None
    namespace: str = ""
    rejected: list[Rejection] = field(default_factory=list)
    named: dict[str, np.ndarray] = field(default_factory=dict)
    vector_name: str = ""

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self.named = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.named.items()}
        for name, arr in self.named.items():
            if arr.ndim != 2 or arr.shape[0] != len(self.ids):
                raise ValueError(f"named vector {name!r} must be ({len(self.ids)}, d), got {arr.shape}")
            if name == self.vector_name:
                raise ValueError(f"named vector {name!r} is also the batch's first vector")
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, d), got shape {self.vectors.shape}")
        n = len(self.ids)
        if self.vectors.shape[0] != n or len(self.metadata) != n:
            raise ValueError(
                f"column lengths differ: {n} ids, {self.vectors.shape[0]} vectors, "
                f"{len(self.metadata)} metadata"
            )
        if self.sparse is not None and len(self.sparse) != n:
            raise ValueError(f"column lengths differ: {n} ids, {len(self.sparse)} sparse")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def floats_per_record(self) -> int:
        """Dense components per record, over every vector (what a write request carries)."""
        return self.dimension + sum(int(v.shape[1]) for v in self.named.values())

    def dense_vectors(self) -> dict[str, np.ndarray]:
        """Every dense vector column by name (the first one under ``vector_name``)."""
        return {self.vector_name: self.vectors, **self.named}

    @classmethod
    def empty(cls, dimension: int = 0, namespace: str = "") -> "RecordBatch":
        return cls([], np.zeros((0, dimension), np.float32), [], None, namespace)

    def take(self, rows: Sequence[int] | np.ndarray) -> "RecordBatch":
        """A new batch with the given rows, in that order (copies, never views)."""
        rows = [int(r) for r in rows]
        return RecordBatch(
            ids=[self.ids[r] for r in rows],
            vectors=self.vectors[rows].copy() if rows else self.vectors[:0].copy(),
            metadata=[dict(self.metadata[r]) for r in rows],
            sparse=None if self.sparse is None else [self.sparse[r] for r in rows],
            namespace=self.namespace,
            named={k: v[rows].copy() if rows else v[:0].copy() for k, v in self.named.items()},
            vector_name=self.vector_name,
        )

    def rows(self) -> Iterator[tuple[RecordId, np.ndarray, Metadata, SparseVector | None]]:
        for i, rid in enumerate(self.ids):
            yield rid, self.vectors[i], self.metadata[i], None if self.sparse is None else self.sparse[i]

    @staticmethod
    def concat(batches: Sequence["RecordBatch"]) -> "RecordBatch":
        batches = [b for b in batches if len(b)]
        if not batches:
            return RecordBatch.empty()
        sparse: list[SparseVector | None] | None = None
        if any(b.sparse is not None for b in batches):
            sparse = []
            for b in batches:
                sparse.extend(b.sparse if b.sparse is not None else [None] * len(b))
        names = set(batches[0].named)
        if any(set(b.named) != names for b in batches):
            raise ValueError("cannot concatenate batches with different named vectors")
        return RecordBatch(
            ids=[i for b in batches for i in b.ids],
            vectors=np.concatenate([b.vectors for b in batches]),
            metadata=[m for b in batches for m in b.metadata],
            sparse=sparse,
            namespace=batches[0].namespace,
            named={k: np.concatenate([b.named[k] for b in batches]) for k in sorted(names)},
            vector_name=batches[0].vector_name,
        )
