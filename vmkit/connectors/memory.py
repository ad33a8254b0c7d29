"""In-process connector with seeded fault injection: the test double and demo sink.

``memory://NAME`` names a store shared by every connector opened on it in this process.
Query options (all optional):

- ``ids=uuid,uint``        id kinds the store accepts as a target (default: all)
- ``normalize=1``          store unit vectors under cosine (like Qdrant)
- ``max_records=N``        per-write record limit; ``max_bytes=N`` per-write byte limit
- ``fail_rate=P``          probability that a call raises TransientError before doing anything
- ``terminal_rate=P``      probability of a TerminalError instead
- ``fail_ops=upsert,scan`` which calls faults apply to (default: upsert; also fetch, delete,
                           describe, create)
- ``latency_ms=N``         sleep before each call
- ``seed=N``               fault RNG seed
- ``invalid_field=F``      refuse (InvalidData) any write holding a record whose metadata has F
- ``corrupt_rate=P``       silently add noise to this share of written vectors (a broken target)
- ``retry_after=S``        injected transient failures carry ``retry_after=S`` (a 429 with Retry-After)
- ``hang_rate=P``          probability that a call hangs ``hang_ms=N`` ms, then raises
                           TransientError("timed out") like a client timeout (nothing applied)
- ``reset_rate=P``         probability that a call raises TransientError("connection reset")
                           *after* its effect: a write is applied but its acknowledgement is lost
- ``invalid_partial=1``    with ``invalid_field``: the valid records of a refused write are
                           applied before InvalidData is raised (per-object failures inside an
                           accepted batch, as Weaviate reports them)
- ``lag_ms=N``             read-after-write lag: an acknowledged upsert or delete shows in reads
                           (fetch, scan, describe) only N ms later, in write order (an eventually
                           consistent store, as Pinecone is)

All rates share one seeded roll per call, in the order terminal, transient, hang, reset, so
adding a new kind never changes the sequence of the others. ``Faults.inject(exc, ...)`` queues
exact exceptions for the next calls (checked before the roll).

Faults live with the store name, so every connector opened on ``memory://NAME`` shares them
and tests can change them mid-run through ``faults_for(NAME)``.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.connectors.faults import Faults, raise_due
from vmkit.core.errors import ConfigError, InvalidData, TerminalError
from vmkit.core.records import Metadata, RecordBatch, RecordId, SparseVector

_Row = tuple[np.ndarray, Metadata, SparseVector | None, dict[str, np.ndarray]]  # named vectors last


@dataclass
class _Store:
    spec: TargetSpec
    namespaces: dict[str, dict[RecordId, _Row]] = field(default_factory=dict)
    _sorted: dict[str, list[RecordId]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    unseen: deque = field(default_factory=deque)  # (visible at, write) under lag_ms

    def sorted_ids(self, ns: str) -> list[RecordId]:
        if ns not in self._sorted:
            self._sorted[ns] = sorted(self.namespaces.get(ns, {}), key=_id_key)
        return self._sorted[ns]

    def touched(self, ns: str) -> None:
        self._sorted.pop(ns, None)


_STORES: dict[str, _Store] = {}
_FAULTS: dict[str, "Faults"] = {}
_STORES_LOCK = threading.Lock()


def faults_for(name: str) -> "Faults":
    """The fault settings shared by every connector on memory://NAME."""
    with _STORES_LOCK:
        return _FAULTS.setdefault(name, Faults())


def _id_key(rid: RecordId) -> tuple[int, int, str]:
    """Total order over mixed ids: unsigned ints first, numerically, then strings."""
    return (0, rid, "") if isinstance(rid, int) else (1, 0, rid)


def reset_memory_stores() -> None:
    """Forget every memory:// store (tests)."""
    with _STORES_LOCK:
        _STORES.clear()
        _FAULTS.clear()


class MemoryConnector(Connector):
    scheme = "memory"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        rest = uri.partition("://")[2]
        self.name = rest.split("?")[0].strip("/")
        if not self.name:
            raise ConfigError("memory:// URI needs a store name, e.g. memory://demo")
        p = self.params
        kinds = frozenset(k for k in p.get("ids", "uuid,uint,string").split(",") if k)
        self.capabilities = Capabilities(
            max_batch_records=int(p.get("max_records", 1000)),
            max_batch_bytes=int(p.get("max_bytes", 32 * 1024 * 1024)),
            id_kinds=kinds,
            normalizes_cosine=p.get("normalize", "0") == "1",
            sparse=True,
            named_vectors=True,
            namespaces=True,
            metadata_objects=True,  # rows hold deep copies of the dicts written
        )
        with _STORES_LOCK:
            if self.name not in _FAULTS:
                _FAULTS[self.name] = Faults(
                    fail_rate=float(p.get("fail_rate", 0)),
                    terminal_rate=float(p.get("terminal_rate", 0)),
                    latency_s=float(p.get("latency_ms", 0)) / 1000,
                    ops=frozenset(p.get("fail_ops", "upsert").split(",")),
                    rng=random.Random(int(p.get("seed", 0))),
                    invalid_field=p.get("invalid_field", ""),
                    corrupt_rate=float(p.get("corrupt_rate", 0)),
                    retry_after=float(p["retry_after"]) if "retry_after" in p else None,
                    hang_rate=float(p.get("hang_rate", 0)),
                    hang_s=float(p.get("hang_ms", 0)) / 1000,
                    reset_rate=float(p.get("reset_rate", 0)),
                    invalid_partial=p.get("invalid_partial", "0") == "1",
                    lag_s=float(p.get("lag_ms", 0)) / 1000,
                )
            self.faults = _FAULTS[self.name]

    # -- helpers ---------------------------------------------------------------------------
    def _store(self) -> _Store:
        store = _STORES.get(self.name)
        if store is None:
            raise TerminalError(f"memory://{self.name} does not exist")
        _show_due(store)
        return store

    def _later(self, store: _Store, write: Callable[[], None]) -> None:
        """Apply ``write`` now, or (under ``lag_ms``) once its lag has passed."""
        with store.lock:
            if self.faults.lag_s:
                store.unseen.append((time.monotonic() + self.faults.lag_s, write))
            else:
                write()

    def _batch(self, ns: str, ids: list[RecordId], rows: list[_Row], dim: int) -> RecordBatch:
        vectors = np.stack([r[0] for r in rows]) if rows else np.zeros((0, dim), np.float32)
        sparse = [r[2] for r in rows]
        spec = self._store().spec
        return RecordBatch(
            ids=list(ids),
            vectors=vectors,
            metadata=[copy.deepcopy(r[1]) for r in rows],  # deep copy
            sparse=sparse if any(s is not None for s in sparse) else None,
            namespace=ns,
            named={n: np.stack([r[3][n] for r in rows]) if rows else np.zeros((0, int(v["dimension"])), np.float32)
                   for n, v in spec.extra_vectors.items()},
            vector_name=spec.vector_name,
        )

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        raise_due(self.faults.maybe_fail("describe"))
        store = _STORES.get(self.name)
        if store is None:
            return None
        _show_due(store)
        with store.lock:
            counts = {ns: len(rows) for ns, rows in store.namespaces.items() if rows}
        return CollectionInfo(
            name=self.name,
            dimension=store.spec.dimension,
            metric=store.spec.metric,
            count=sum(counts.values()),
            namespaces=counts,
            sparse=store.spec.sparse,
            vector_name=store.spec.vector_name,
            extra_vectors=dict(store.spec.extra_vectors),
        )

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        """Namespaces in name order, ids in ``_id_key`` order; cursor = [namespace, last id]."""
        raise_due(self.faults.maybe_fail("scan"))
        store = self._store()
        with store.lock:
            spaces = sorted(ns for ns, rows in store.namespaces.items() if rows)
            cur_ns, after = ("", None) if cursor is None else orjson.loads(cursor)
            for pos, ns in enumerate(spaces):
                if ns < cur_ns:
                    continue
                ids = store.sorted_ids(ns)
                start = _bisect_after(ids, _id_key(after)) if ns == cur_ns and after is not None else 0
                chunk = ids[start : start + limit]
                if not chunk:
                    continue
                if start + limit < len(ids):
                    nxt: str | None = orjson.dumps([ns, chunk[-1]]).decode()
                elif pos + 1 < len(spaces):
                    nxt = orjson.dumps([spaces[pos + 1], None]).decode()
                else:
                    nxt = None
                rows = [store.namespaces[ns][i] for i in chunk]
                return self._batch(ns, chunk, rows, store.spec.dimension), nxt
            return RecordBatch.empty(store.spec.dimension), None

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        store = self._store()
        rng = random.Random(seed)
        with store.lock:
            keys = [(ns, rid) for ns in sorted(store.namespaces) for rid in store.sorted_ids(ns)]
            chosen = sorted(rng.sample(range(len(keys)), min(n, len(keys))))
            out: dict[str, list[RecordId]] = {}
            for k in chosen:
                out.setdefault(keys[k][0], []).append(keys[k][1])
        return [self.fetch(ids, ns) for ns, ids in out.items()]

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        raise_due(self.faults.maybe_fail("fetch"))
        store = self._store()
        with store.lock:
            rows = store.namespaces.get(namespace, {})
            found = [i for i in ids if i in rows]
            return self._batch(namespace, found, [rows[i] for i in found], store.spec.dimension)

    def upsert(self, batch: RecordBatch) -> None:
        late = self.faults.maybe_fail("upsert")
        store = self._store()
        if batch.dimension != store.spec.dimension and len(batch):
            raise TerminalError(
                f"dimension {batch.dimension} does not match memory://{self.name} "
                f"({store.spec.dimension})"
            )
        if len(batch) and set(batch.named) != set(store.spec.extra_vectors):
            raise TerminalError(f"named vectors {sorted(batch.named)} do not match memory://{self.name} "
                                f"({sorted(store.spec.extra_vectors)})")
        faults = self.faults
        if faults.invalid_field:
            refused = [i for i, meta in enumerate(batch.metadata) if meta.get(faults.invalid_field)]
            if refused:
                if faults.invalid_partial:  # the other objects of the batch were accepted
                    self._apply(batch.take([i for i in range(len(batch)) if i not in set(refused)]))
                raise InvalidData(f"record {batch.ids[refused[0]]!r}: field "
                                  f"{faults.invalid_field!r} is not allowed")
        self._apply(batch)
        raise_due(late)

    def _apply(self, batch: RecordBatch) -> None:
        store = self._store()
        faults = self.faults
        vectors = batch.vectors.copy()
        if faults.corrupt_rate:
            for i in range(len(vectors)):
                if faults.rng.random() < faults.corrupt_rate:
                    vectors[i] += np.float32(faults.rng.gauss(0, 1)) * np.abs(vectors[i]).max()
        named = {n: self._as_stored(v.copy(), store.spec.extra_vectors[n]["metric"]) for n, v in batch.named.items()}
        vectors = self._as_stored(vectors, store.spec.metric)
        ids, ns, sparse = list(batch.ids), batch.namespace, batch.sparse
        metadata = [copy.deepcopy(m) for m in batch.metadata]

        def write() -> None:
            rows = store.namespaces.setdefault(ns, {})
            for i, rid in enumerate(ids):
                rows[rid] = (vectors[i], metadata[i], None if sparse is None else sparse[i],
                             {n: v[i] for n, v in named.items()})
            store.touched(ns)

        self._later(store, write)

    def _as_stored(self, vectors: np.ndarray, metric: str) -> np.ndarray:
        """Unit rows under cosine when the store normalizes (as Qdrant does), else as given."""
        if self.capabilities.normalizes_cosine and metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        late = self.faults.maybe_fail("delete")
        store = self._store()
        gone = list(ids)

        def write() -> None:
            rows = store.namespaces.get(namespace, {})
            for rid in gone:
                rows.pop(rid, None)
            store.touched(namespace)

        self._later(store, write)
        raise_due(late)

    def single_process(self) -> str | None:
        return "memory:// stores live inside one process"

    def count(self) -> int:
        info = self.describe()
        return 0 if info is None else info.count

    def create(self, spec: TargetSpec) -> None:
        late = self.faults.maybe_fail("create")
        with _STORES_LOCK:
            if self.name in _STORES:
                raise TerminalError(f"memory://{self.name} already exists")
            _STORES[self.name] = _Store(spec)
        raise_due(late)

    def drop(self) -> None:
        with _STORES_LOCK:
            _STORES.pop(self.name, None)


def _show_due(store: _Store) -> None:
    """Writes whose read-after-write lag has passed become visible (``lag_ms``)."""
    if store.unseen:
        with store.lock:
            now = time.monotonic()
            while store.unseen and store.unseen[0][0] <= now:
                store.unseen.popleft()[1]()


def _bisect_after(ids: list[RecordId], key: tuple[int, int, str]) -> int:
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if _id_key(ids[mid]) <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo
