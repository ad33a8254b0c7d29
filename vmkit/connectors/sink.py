"""A target that keeps only a content fingerprint per id: ``sink://NAME``.

For benchmarks and dry rehearsals at scale: it acknowledges writes like a real target, and
full verification compares its fingerprints with the source's, but it holds 16 bytes a record
instead of the records. It cannot return records (fetch and scan refuse).
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, Sequence

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.core.errors import TerminalError
from vmkit.core.fingerprint import Digest, batch_digests
from vmkit.core.records import RecordBatch, RecordId

_SINKS: dict[str, tuple[TargetSpec, dict[tuple[str, RecordId], Digest]]] = {}
_LOCK = threading.Lock()


class SinkConnector(Connector):
    scheme = "sink"
    capabilities = Capabilities(max_batch_records=100_000, max_batch_bytes=1 << 40)

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.name = uri.partition("://")[2].split("?")[0].strip("/") or "sink"

    def _store(self) -> dict[tuple[str, RecordId], Digest]:
        if self.name not in _SINKS:
            raise TerminalError(f"sink://{self.name} does not exist")
        return _SINKS[self.name][1]

    def describe(self) -> CollectionInfo | None:
        if self.name not in _SINKS:
            return None
        spec, store = _SINKS[self.name]
        return CollectionInfo(self.name, spec.dimension, spec.metric, len(store))

    def upsert(self, batch: RecordBatch) -> None:
        digests = dict(batch_digests(batch))
        with _LOCK:
            self._store().update(digests)

    def digests(self, **hash_opts: Any) -> Iterator[tuple[tuple[str, RecordId], Digest]]:
        if any(hash_opts.get(k) for k in ("normalize", "numbers_as_float", "normalize_named")):
            raise TerminalError("sink:// keeps raw-record fingerprints only")
        return self._each_digest()

    def _each_digest(self) -> Iterator[tuple[tuple[str, RecordId], Digest]]:
        # Over a snapshot of the keys only (8 bytes a record), not of every (key, digest) pair.
        store = self._store()
        for key in list(store):
            digest = store.get(key)
            if digest is not None:
                yield key, digest

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        with _LOCK:
            store = self._store()
            for rid in ids:
                store.pop((namespace, rid), None)

    def count(self) -> int:
        return len(self._store())

    def create(self, spec: TargetSpec) -> None:
        with _LOCK:
            _SINKS.setdefault(self.name, (spec, {}))

    def drop(self) -> None:
        with _LOCK:
            _SINKS.pop(self.name, None)

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        raise TerminalError("sink:// keeps fingerprints, not records")

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        raise TerminalError("sink:// keeps fingerprints, not records")
