"""The bad-input corpus, and a source connector that can hold every case of it.

``corpus://NAME`` serves a fixed list of RecordBatches registered with ``register`` (one
batch per case, cursor = batch index), so a test can hand the runner what no real store
would keep: NaN components, a batch of the wrong dimension, records the source itself could
not represent (``RecordBatch.rejected``), empty ids, ints past 2**64 and so on.
Install it with ``install(monkeypatch)`` (it patches ``vmkit.connectors._BUILTIN``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import orjson

from vmkit.connectors.base import CollectionInfo, TargetSpec
from vmkit.connectors.memory import MemoryConnector
from vmkit.core.errors import TerminalError
from vmkit.core.records import RecordBatch, RecordId, Rejection, SparseVector

DIM = 4
_BATCHES: dict[str, list[RecordBatch]] = {}


class StringIdsTarget(MemoryConnector):
    """memory:// with Pinecone's id rules: string ids of at most 512 characters, and zero
    vectors refused (``strs://NAME``; same store as ``memory://NAME``)."""

    scheme = "strs"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.capabilities = replace(self.capabilities, id_kinds=frozenset({"string"}),
                                    max_id_length=512, rejects_zero_vectors=True)


class JsonTarget(MemoryConnector):
    """memory:// that keeps metadata as JSON text, as a REST service does (``json://NAME``;
    same store as ``memory://NAME``): what reads back is what JSON carried."""

    scheme = "json"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.capabilities = replace(self.capabilities, metadata_objects=False)

    def upsert(self, batch: RecordBatch) -> None:
        batch = batch.take(range(len(batch)))
        batch.metadata = [orjson.loads(orjson.dumps(m)) for m in batch.metadata]
        super().upsert(batch)


class CorpusSource(MemoryConnector):
    """Read-only source over registered batches (cursor: the next batch's index)."""

    scheme = "corpus"

    def describe(self) -> CollectionInfo | None:
        batches = _BATCHES.get(self.name)
        if batches is None:
            return None
        spaces: dict[str, int] = {}
        for b in batches:
            spaces[b.namespace] = spaces.get(b.namespace, 0) + len(b) + len(b.rejected)
        return CollectionInfo(self.name, DIM, "cosine", sum(spaces.values()),
                              {k: v for k, v in spaces.items() if v}, sparse=True)

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        batches = _BATCHES[self.name]
        i = 0 if cursor is None else int(cursor)
        assert len(batches[i]) <= limit
        return _copy(batches[i]), (str(i + 1) if i + 1 < len(batches) else None)

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        return [_copy(b) for b in _BATCHES[self.name]]

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        raise TerminalError("corpus:// is scanned, never fetched")

    def upsert(self, batch: RecordBatch) -> None:
        raise TerminalError("corpus:// is read-only")

    def create(self, spec: TargetSpec) -> None:
        raise TerminalError("corpus:// is read-only")


def _copy(b: RecordBatch) -> RecordBatch:
    out = RecordBatch(list(b.ids), b.vectors.copy(), [dict(m) for m in b.metadata],
                      None if b.sparse is None else list(b.sparse), b.namespace)
    out.rejected = list(b.rejected)
    return out


def install(monkeypatch: Any) -> None:
    import vmkit.connectors as registry

    monkeypatch.setitem(registry._BUILTIN, "corpus", "resilience.corpus:CorpusSource")
    monkeypatch.setitem(registry._BUILTIN, "strs", "resilience.corpus:StringIdsTarget")
    monkeypatch.setitem(registry._BUILTIN, "json", "resilience.corpus:JsonTarget")


def register(name: str, batches: list[RecordBatch]) -> str:
    _BATCHES[name] = batches
    return f"corpus://{name}"


# -- the cases -----------------------------------------------------------------------------------

EXACT = "exact"  # migrated exactly (under the target's documented id mapping)


@dataclass
class Case:
    """One bad-input case: its records (one batch) and, per target kind, what must happen:
    EXACT, or the substring of the dead-letter reason."""

    name: str
    ids: list[Any]
    vectors: np.ndarray
    metadata: list[dict[str, Any]] | None = None
    namespace: str = ""
    sparse: list[SparseVector | None] | None = None
    source_rejected: list[Rejection] = field(default_factory=list)
    expect: dict[str, str] = field(default_factory=dict)  # target kind -> EXACT or reason
    default: str = EXACT

    def outcome(self, kind: str) -> str:
        return self.expect.get(kind, self.default)

    def batch(self) -> RecordBatch:
        meta = self.metadata if self.metadata is not None else [{} for _ in self.ids]
        b = RecordBatch(list(self.ids), self.vectors, meta, self.sparse, self.namespace)
        b.rejected = list(self.source_rejected)
        return b


def vec(*rows: Sequence[float], dim: int = DIM) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(len(rows), dim)


def one(name: str, rid: Any, meta: dict[str, Any] | None = None, v: Sequence[float] = (1, 2, 3, 4),
        **kw: Any) -> Case:
    return Case(name, [rid], vec(v), [meta or {}], **kw)


NAN, INF = float("nan"), float("inf")
UPPER_UUID = "6F1D2C3A-8A3E-5B7C-9D42-7A6B5C4D3E2F"
NONFINITE = "vector has NaN or Inf components"
ZERO = "all-zero vector"
# Targets: "mem" accepts every id kind and stores vectors as given; "qlike" is memory with
# Qdrant's rules (uuid/uint ids, unit vectors under cosine, a 16 MB request limit); "strs"
# takes string ids of at most 512 characters only and refuses zero vectors (Pinecone's id
# rules); "qdrant" is the embedded Qdrant engine.
NORMALIZING = ("qlike", "qdrant")
SKIP = "skip"  # not sent to that target (tested on its own)
BIG = "x" * (17 * 1024 * 1024)  # over Qdrant's 16 MB request, under memory's 32 MB


def cases() -> list[Case]:
    dup = vec((1, 0, 0, 0), (0, 1, 0, 0))
    return [
        # vectors
        one("nan component", "v-nan", v=(NAN, 1, 2, 3), default=NONFINITE),
        one("inf component", "v-inf", v=(1, INF, 2, 3), default=NONFINITE),
        one("-inf component", "v-ninf", v=(1, 2, -INF, 3), default=NONFINITE),
        one("zero vector", "v-zero", v=(0, 0, 0, 0),
            expect={k: ZERO for k in (*NORMALIZING, "strs")}),
        one("negative zero and denormal", "v-denormal", v=(-0.0, 1e-45, 0, 0)),
        one("large but finite", "v-large", v=(1e18, -1e18, 3, 4)),
        Case("wrong dimension", ["v-dim5a", "v-dim5b"], vec((1, 2, 3, 4, 5), (5, 4, 3, 2, 1), dim=5),
             [{}, {}], default="wrong vector dimension (5, the target takes 4)"),
        Case("source could not represent", [], vec(dim=DIM)[:0], [],
             source_rejected=[Rejection("v-src-bad", "vector of dimension 3 in a 4-d collection",
                                        "vector")],
             default="vector of dimension 3 in a 4-d collection"),
        Case("sparse only", ["v-sparse-only"], np.zeros((1, 0), np.float32), [{}],
             sparse=[SparseVector.of([1, 7], [0.5, 0.25])], default="dimension (0"),
        Case("dense and sparse", ["v-hybrid"], vec((1, 2, 3, 4)), [{"k": 1}],
             sparse=[SparseVector.of([3, 2**31 + 5], [1.5, -2.0])]),
        # ids
        one("empty id", "", default="empty id"),
        one("512-character id", "i" * 512),
        one("513-character id", "j" * 513, expect={"strs": "over the target's 512-character limit"}),
        one("whitespace ids: one space", " "),
        one("whitespace ids: leading", " lead"),
        one("whitespace ids: trailing", "trail "),
        one("whitespace ids: inside", "in side"),
        one("unicode id: NFC", "caf\u00e9"),
        one("unicode id: NFD (a different id)", "cafe\u0301"),
        one("unicode id: CJK and emoji", "日本語🚀"),
        one("unicode id: zero-width joiner", "a\u200db"),
        one("int id 0", 0),
        one("int id and its string twin", 7, expect={"strs": SKIP}),
        one("string id and its int twin", "7"),
        one("max uint id", 2**64 - 1),
        one("negative int id", -1, default="outside 0..2**64-1"),
        one("lowercase uuid id", UPPER_UUID.lower()),
        one("id of a non-id type", 1.5, default="id of type float"),
        one("id None", None, default="id of type NoneType"),
        Case("duplicate ids in one batch", ["dup", "dup"], dup, [{"n": 1}, {"n": 2}]),
        # metadata
        one("null value", "m-null", {"x": None}),
        one("nested objects", "m-nested", {"a": {"b": [1, {"c": None}], "d": {}}}),
        one("mixed-type list", "m-mixed", {"x": [1, "a", True, None, 2.5]}),
        Case("mixed types across records", ["m-t-int", "m-t-str", "m-t-float", "m-t-bool"],
             vec((1, 1, 1, 1), (1, 1, 1, 2), (1, 1, 1, 3), (1, 1, 1, 4)),
             [{"x": 1}, {"x": "1"}, {"x": 1.0}, {"x": True}]),
        one("ints past 2**53", "m-bigint", {"x": 2**53 + 1, "y": -(2**63), "z": 2**64 - 1}),
        one("float extremes", "m-floats", {"max": 1.7976931348623157e308, "tiny": 5e-324, "nz": -0.0}),
        one("unicode keys and values", "m-unicode", {"ключ": "значение", "emoji": "🚀", "nul": "a\x00b"}),
        one("dotted and dollar keys", "m-keys", {"a.b": 1, "a": {"b": 2}, "$x": 3},
            ),
        one("empty metadata", "m-empty", {}),
        one("oversized metadata", "m-big", {"blob": BIG},
            expect={"qlike": "request limit", "qdrant": "request limit"}),
        # namespaces
        one("id in the empty namespace", "ns-twin", {"where": "default"}),
        one("same id in a named namespace", "ns-twin", {"where": "tenant"}, namespace="tenant-a"),
        Case("an empty batch in a namespace", [], vec(dim=DIM)[:0], [], namespace="empty"),
    ]
