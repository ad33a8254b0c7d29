"""A deterministic synthetic source: records generated on demand from a seed, nothing held.

``synthetic://NAME?n=1000000&dim=768&seed=1&metric=dot&metadata=minimal|rich``

Record ``i`` (ids 0..n-1) always has the same vector and metadata, so a scan, a fetch after a
restart and a full verification all see the same data. Vectors are
``A[i % P] + 0.1 * B[(i // P) % P]`` over two seeded pools of P=4096 rows: distinct for every
i < P**2, and cheap to make (two gathers and an add). Read-only.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, ReadOnly
from vmkit.connectors.datasets import record_metadata
from vmkit.connectors.partitions import WHOLE, Partition, int_ranges
from vmkit.core.errors import ConfigError, TerminalError
from vmkit.core.records import Metadata, RecordBatch, RecordId

POOL = 4096


@functools.lru_cache(maxsize=4)
def _pools(seed: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((POOL, dim), dtype=np.float32),
            rng.standard_normal((POOL, dim), dtype=np.float32) * np.float32(0.1))


class SyntheticConnector(ReadOnly, Connector):
    scheme = "synthetic"
    capabilities = Capabilities(id_kinds=frozenset({"uint"}), parallel_writes=False)

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        p = self.params
        self.name = uri.partition("://")[2].split("?")[0].strip("/") or "synthetic"
        try:
            self.n, self.dim, self.seed = int(p.get("n", 10_000)), int(p.get("dim", 768)), int(p.get("seed", 1))
        except ValueError:
            raise ConfigError("synthetic:// options n, dim and seed are integers") from None
        self.metric = p.get("metric", "dot")
        self.rich = p.get("metadata", "minimal") == "rich"

    def _rows(self, ids: np.ndarray) -> RecordBatch:
        a, b = _pools(self.seed, self.dim)
        vectors = a[ids % POOL]
        vectors += b[(ids // POOL) % POOL]
        return RecordBatch([int(i) for i in ids], vectors, [self._meta(int(i)) for i in ids])

    def _meta(self, i: int) -> Metadata:
        if self.rich:
            return record_metadata(np.random.default_rng([self.seed, i]), i)
        return {"i": i, "group": i % 97}

    def describe(self) -> CollectionInfo | None:
        return CollectionInfo(self.name, self.dim, self.metric, self.n)

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        start = 0 if cursor is None else int(orjson.loads(cursor))
        stop = min(self.n, start + limit)
        batch = self._rows(np.arange(start, stop, dtype=np.int64))
        return batch, (orjson.dumps(stop).decode() if stop < self.n else None)

    def partitions(self, n: int) -> list[Partition] | None:
        return int_ranges(self.n, n)

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        end = self.n if part.upper is None else min(self.n, int(part.upper))
        start = int(part.lower or 0) if cursor is None else int(orjson.loads(cursor))
        stop = min(end, start + limit)
        batch = self._rows(np.arange(start, stop, dtype=np.int64))
        return batch, (orjson.dumps(stop).decode() if stop < end else None)

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        if namespace:
            return RecordBatch.empty(self.dim)
        wanted = [i for i in ids if isinstance(i, int) and 0 <= i < self.n]
        return self._rows(np.asarray(wanted, dtype=np.int64))

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        rng = np.random.default_rng(seed)
        return [self._rows(np.sort(rng.choice(self.n, size=min(n, self.n), replace=False)))]

    def count(self) -> int:
        return self.n

    def read_only_error(self) -> Exception:
        return TerminalError("synthetic:// is a read-only source")
