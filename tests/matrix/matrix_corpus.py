"""The cross-engine corpus: about 2,000 records made of the bad-input corpus's valid cases,
each kind repeated with variations, so every pair of engines meets them all at once.

Ids mix the three kinds (unsigned ints up to 2**64-1, canonical UUIDs, strings with spaces,
``+ % # /``, NFC/NFD twins, CJK and emoji, digit strings that collide with int ids); metadata
holds nested objects with nulls inside, null values, ints past 2**53 and 2**63-1, unicode keys
and values, lists, and a key whose type changes across records. Every record has a dense
``default`` vector and a named ``title`` vector; every third one a sparse vector. Engines keep
what they can hold: the plan of each pair says what changes, and the rest is rejected by name.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from vmkit.connectors.base import TargetSpec
from vmkit.connectors.memory import MemoryConnector
from vmkit.core.records import RecordBatch, RecordId, SparseVector

DIM, TITLE_DIM, METRIC = 16, 8, "dot"  # dot: the one metric every engine has with sparse (Pinecone)
_ODD = [" ", " lead", "trail ", "in side", "a+b", "50%", "#frag", "a/b", "caf\u00e9", "cafe\u0301",
        "日本語", "🚀", "a\u200db", "ключ"]


def corpus_ids(n: int = 2000) -> list[RecordId]:
    """A fixed mix of id kinds: 30% ints, 30% UUIDs, 40% strings (a quarter of those odd)."""
    ints = [0, 1, 7, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
    ids: list[RecordId] = list(ints)
    ids += [1000 + 7 * i for i in range(int(n * 0.3) - len(ints))]
    ids += [str(uuid.UUID(int=(i * 2654435761 + 12345) % 2**128)) for i in range(int(n * 0.3))]
    strings: list[RecordId] = ["7", "0", "18446744073709551615", "i" * 512]
    k = 0
    while len(ids) + len(strings) < n:
        odd = _ODD[k % len(_ODD)]
        strings.append(f"doc-{k}" if k % 4 else f"{odd}-{k}")
        k += 1
    return ids + strings


def corpus_metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"title": f"записка {i} 🚀", "rank": i, "score": i / 7, "ok": i % 2 == 0,
                            "tags": ["x", f"t{i % 5}"]}
    if i % 5 == 0:
        meta["nested"] = {"a": {"b": [1, {"c": None}], "d": "é"}}
    if i % 7 == 0:
        meta["nullable"] = None
    if i % 11 == 0:
        meta["big"] = 2**53 + 1 + i
    if i % 13 == 0:
        meta["huge"] = 2**63 - 1
    meta["mixed"] = [1, "1", 1.5, True][i % 4]  # one key, four types across records
    if i % 17 == 0:
        meta["ключ"] = "значение"
    return meta


def corpus_batch(n: int = 2000, seed: int = 7) -> RecordBatch:
    ids = corpus_ids(n)
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    title = rng.standard_normal((len(ids), TITLE_DIM)).astype(np.float32)
    sparse = [SparseVector.of([i % 97, 100 + i % 53, 2**20 + i], [0.5, 1.25, float(i % 9) + 0.5])
              if i % 3 == 0 else None for i in range(len(ids))]
    return RecordBatch(ids, dense, [corpus_metadata(i) for i in range(len(ids))], sparse,
                       named={"title": title}, vector_name="default")


def corpus_source(name: str = "matrix-corpus", n: int = 2000) -> str:
    """memory://NAME holding the corpus (this process only)."""
    conn = MemoryConnector(f"memory://{name}")
    conn.create(TargetSpec(name, DIM, METRIC, sparse=True, vector_name="default",
                           extra_vectors={"title": {"dimension": TITLE_DIM, "metric": METRIC}}))
    conn.upsert(corpus_batch(n))
    return f"memory://{name}"
