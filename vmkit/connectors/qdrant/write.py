"""The writing half of QdrantConnector: upsert, delete, create and drop (see qdrant.py for the
URI and its options)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from vmkit.connectors.base import DEFAULT_VECTOR, Capabilities, TargetSpec
from vmkit.connectors.batching import split_batch
from vmkit.connectors.qdrant.commit import one_commit
from vmkit.connectors.shared import import_sdk
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch, RecordId

_TO_QDRANT = {"cosine": "Cosine", "euclidean": "Euclid", "dot": "Dot", "manhattan": "Manhattan"}


def _sdk() -> Any:
    return import_sdk("qdrant_client", "qdrant-client", "qdrant")


class QdrantWrites:
    """The writing half of QdrantConnector."""

    if TYPE_CHECKING:  # provided by QdrantConnector (qdrant.py)
        collection: str
        vector_name: str
        sparse_name: str
        capabilities: Capabilities
        _key_env: str  # "" on the embedded engine
        _vectors: tuple[str, list[str]] | None

        @property
        def client(self) -> Any: ...
        def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    def upsert(self, batch: RecordBatch) -> None:
        models = _sdk().models
        if batch.named and self.vector_name:
            raise TerminalError(f"records carry {len(batch.named) + 1} named vectors but the URI's "
                                f"vector={self.vector_name} names one: drop vector= from the target URI")
        # The embedded engine validates every point itself and writes synchronously: build the
        # points unvalidated and use upload_points, which inspects one point for local
        # inference where upsert inspects them all. A server gets validated points, upsert.
        embedded = not self._key_env
        make = models.PointStruct.model_construct if embedded else models.PointStruct
        for part in split_batch(batch, self.capabilities):
            points = [make(id=rid, vector=self._vector_struct(part, i, models), payload=part.metadata[i])
                      for i, rid in enumerate(part.ids)]
            self._write(self.client.upload_points if embedded else self.client.upsert, points=points)

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        models = _sdk().models
        self._write(self.client.delete, points_selector=models.PointIdsList(points=list(ids)))

    def _write(self, fn: Any, **kwargs: Any) -> None:
        """A write to this collection, acknowledged when durable. On the embedded engine its
        points share one SQLite commit instead of one each (see qdrant_commit)."""
        if self._key_env:
            self._call(fn, self.collection, wait=True, **kwargs)
            return

        def in_one_commit() -> None:
            with one_commit(self.client, self.collection):
                fn(self.collection, wait=True, **kwargs)

        self._call(in_one_commit)

    def create(self, spec: TargetSpec) -> None:
        models = _sdk().models
        params = models.VectorParams(size=spec.dimension, distance=_TO_QDRANT[spec.metric])
        config: Any = {self.vector_name: params} if self.vector_name else params
        if spec.extra_vectors:
            if self.vector_name:
                raise TerminalError(f"the source has {len(spec.extra_vectors) + 1} named vectors; "
                                    f"vector={self.vector_name} on the target URI names one: drop it")
            config = {name or DEFAULT_VECTOR: models.VectorParams(size=d, distance=_TO_QDRANT[m])
                      for name, (d, m) in spec.vector_spaces().items()}
        self._call(
            self.client.create_collection,
            self.collection,
            vectors_config=config,
            sparse_vectors_config={self.sparse_name: models.SparseVectorParams()} if spec.sparse else None,
        )
        self._vectors = None

    def drop(self) -> None:
        self._call(self.client.delete_collection, self.collection)
        self._vectors = None

    def _vector_struct(self, batch: RecordBatch, i: int, models: Any) -> Any:
        dense: list[float] = batch.vectors[i].tolist()
        sp = None if batch.sparse is None else batch.sparse[i]
        first = self.vector_name or (batch.vector_name or DEFAULT_VECTOR if batch.named else "")
        if sp is None and not first:
            return dense
        named: dict[str, Any] = {}
        if len(dense):
            named[first] = dense
        for name, vectors in batch.named.items():
            named[name] = vectors[i].tolist()
        if sp is not None:
            named[self.sparse_name] = models.SparseVector(
                indices=sp.indices.tolist(), values=sp.values.tolist()
            )
        return named
