"""Chroma connector (``chromadb`` 1.5): source and target.

URIs::

    chroma:///abs/dir?collection=NAME     PersistentClient on a local directory
    chroma://HOST:8000/NAME[?https=true]  HttpClient; a token from CHROMA_TOKEN (never the URI)

No telemetry (``anonymized_telemetry=False``) and no embedding model: vmkit always passes
embeddings and opens collections with ``embedding_function=None``, so Chroma's default function
(an ONNX model downloaded on first use) never runs. Metrics: cosine, l2, ip <-> cosine,
euclidean, dot (the collection's ``hnsw`` space). Under cosine Chroma keeps a unit vector and its
norm and hands back their product, off the written vector by an ulp or so: ``normalizes_cosine``.

Scan: ``Collection.get(limit, offset)`` pages by position in the collection's own order, the
internal sequence id (insertion order; chromadb's local segment reader orders by it, and the
test test_chroma_scan.py checks it). A position alone could skip or repeat if the order moved,
so the cursor keeps the offset AND the id just before it: a resume reads from offset - 1 and
refuses (TerminalError) when that id is not the one expected. Exact while the source is not
written during the run, in a new process too (the cursor is plain JSON).
"""

from __future__ import annotations

import os
import random
import re
import warnings
from typing import Any, Sequence
from urllib.parse import urlsplit

import orjson

from vmkit.connectors.base import Capabilities, CollectionInfo, Connector, TargetSpec
from vmkit.connectors.chroma.rows import DOCUMENT_KEY, to_batch, to_columns
from vmkit.connectors.partitions import WHOLE, Partition, int_ranges
from vmkit.connectors.shared import import_sdk
from vmkit.core.errors import ConfigError, InvalidData, PlanError, TerminalError, TransientError
from vmkit.core.records import RecordBatch, RecordId

_TO_CHROMA = {"cosine": "cosine", "euclidean": "l2", "dot": "ip"}
_FROM_CHROMA = {v: k for k, v in _TO_CHROMA.items()}
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")  # Chroma's collection name rule
_DIM_KEY = "vmkit_dimension"  # collection metadata: the dimension of a collection still empty
_INCLUDE = ["embeddings", "metadatas", "documents"]
MAX_BATCH = 5461  # client.get_max_batch_size() of chromadb 1.5.9; writes also ask the client


def _sdk() -> Any:
    return import_sdk("chromadb", "chromadb", "chroma")


class ChromaConnector(Connector):
    scheme = "chroma"
    extra = "chroma"
    capabilities = Capabilities(
        max_batch_records=MAX_BATCH,
        max_batch_bytes=64 * 1024 * 1024,
        id_kinds=frozenset({"string", "uuid"}),
        metrics=frozenset(_TO_CHROMA),
        normalizes_cosine=True,
        metadata_nested=False,
        metadata_null=False,  # a None value deletes the key
        metadata_mixed_lists=True,  # lists of str, int, float or bool ...
        metadata_uniform_lists=True,  # ... one type per list, non-empty
        metadata_big_ints=True,  # int64 exact (ints past 2**63-1 are refused by name)
        field_name_pattern=r"(?s)[^#$].*",  # '#' and '$' lead Chroma's own keys and operators
        parallel_writes=False,  # one SQLite writer per directory
    )

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if parts.netloc:  # chroma://host:port/NAME
            self.path, self.host, self.port = "", parts.hostname or "", parts.port or 8000
            self.collection = parts.path.strip("/")
        else:
            self.path, self.host, self.port = parts.path, "", 0
            self.collection = self.params.get("collection", "")
        if not self.collection or (not self.host and not self.path):
            raise ConfigError("chroma URI: chroma:///abs/dir?collection=NAME or chroma://host:8000/NAME")
        if not _NAME.fullmatch(self.collection) or ".." in self.collection:
            raise ConfigError(f"chroma collection names are 3-512 characters of [a-zA-Z0-9._-], "
                              f"starting and ending alphanumeric: {self.collection!r}")
        self._client: Any = None
        self._col: Any = None

    # -- client ----------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._client is None:
            sdk = _sdk()
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)
            if self.host:
                token = os.environ.get("CHROMA_TOKEN")
                headers = {"Authorization": f"Bearer {token}"} if token else None
                self._client = sdk.HttpClient(host=self.host, port=self.port, ssl=self.params.get("https") == "true",
                                              headers=headers, settings=settings)
            else:
                self._client = sdk.PersistentClient(path=self.path, settings=settings)
        return self._client

    def _collection(self, must: bool = True) -> Any:
        if self._col is None:
            try:
                self._col = self._call(lambda c: c.get_collection(self.collection, embedding_function=None))
            except TerminalError:
                if must:
                    raise TerminalError(f"chroma collection {self.collection} does not exist") from None
                return None
        return self._col

    def _call(self, fn: Any) -> Any:
        try:
            return fn(self._open())
        except (TransientError, TerminalError, PlanError, ConfigError):
            raise
        except Exception as exc:
            raise _classify(exc) from exc

    def single_process(self) -> str | None:
        return None if self.host else "Chroma's persistent client opens its directory in one process only"

    def close(self) -> None:
        self._client = self._col = None

    # -- contract --------------------------------------------------------------------------
    def describe(self) -> CollectionInfo | None:
        col = self._collection(must=False)
        if col is None:
            return None
        with warnings.catch_warnings():  # "legacy embedding function config": we pass none
            warnings.simplefilter("ignore", DeprecationWarning)
            config = col.configuration or {}
        space = (config.get("hnsw") or config.get("spann") or {}).get("space", "l2")
        count = int(self._call(lambda _: col.count()))
        dim = getattr(col._model, "dimension", None) or (col.metadata or {}).get(_DIM_KEY)
        if count:
            first = self._call(lambda _: col.get(limit=1, offset=0, include=["embeddings"]))
            emb = first.get("embeddings")
            if emb is None or len(emb) == 0 or emb[0] is None or len(emb[0]) == 0:
                raise PlanError(f"chroma collection {self.collection}: record {first['ids'][0]!r} has no "
                                "embedding (field 'embeddings'); vmkit moves vectors, never re-embeds documents")
            dim = dim or len(emb[0])
        return CollectionInfo(self.collection, int(dim or 0), _FROM_CHROMA.get(space, space), count)

    def count(self) -> int:
        col = self._collection()
        return int(self._call(lambda _: col.count()))

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        return self._scan_positions(cursor, limit, 0, None)

    def partitions(self, n: int) -> list[Partition] | None:
        """Position ranges of the collection's own order: ``[lower, upper)`` offsets, the last
        open, so records added after planning are read by it."""
        count = self.count()
        return int_ranges(count, n) if n > 1 and count > 1 else None

    def scan_partition(self, part: Partition, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        if part.key == WHOLE:
            return self.scan(cursor, limit)
        return self._scan_positions(cursor, limit, int(part.lower or 0), None if part.upper is None else int(part.upper))

    def _scan_positions(self, cursor: str | None, limit: int, lower: int, upper: int | None) -> tuple[RecordBatch, str | None]:
        """A page of the positions ``[lower, upper)`` (None: to the end) from the cursor."""
        col, limit = self._collection(), max(1, limit)
        offset, last = _parse_cursor(cursor)
        offset = max(offset, lower)
        if upper is not None:
            limit = max(0, min(limit, upper - offset))
            if not limit:
                return RecordBatch.empty(), None
        start = offset - 1 if last is not None else offset
        got = self._call(lambda _: col.get(limit=limit + (last is not None), offset=start, include=_INCLUDE))
        if last is not None:
            if not got["ids"] or got["ids"][0] != last:
                seen = got["ids"][0] if got["ids"] else "nothing"
                raise TerminalError(f"chroma collection {self.collection} changed during the read: at "
                                    f"position {start} is {seen!r}, the cursor expected {last!r}")
            got = {k: (v[1:] if isinstance(k, str) and k in ("ids", *_INCLUDE) and v is not None else v)
                   for k, v in got.items()}
        batch = to_batch(got, self._dimension(col))
        n = len(got["ids"])
        if n < limit or (upper is not None and offset + n >= upper):
            return batch, None
        return batch, orjson.dumps({"offset": offset + n, "last": got["ids"][-1]}).decode()

    def fetch(self, ids: Sequence[RecordId], namespace: str = "") -> RecordBatch:
        keys = [i for i in ids if isinstance(i, str) and i] if not namespace else []
        col, parts = self._collection(), []
        for i in range(0, len(keys), MAX_BATCH):
            chunk = keys[i:i + MAX_BATCH]
            parts.append(to_batch(self._call(lambda _, c=chunk: col.get(ids=c, include=_INCLUDE)),
                                  self._dimension(col)))
        out = RecordBatch.concat(parts) if len(parts) != 1 else parts[0]
        out.rejected = [r for p in parts for r in p.rejected]  # concat keeps only records
        return out

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        col, cols = self._collection(), to_columns(batch)
        step = min(MAX_BATCH, int(self._call(lambda c: c.get_max_batch_size())))
        for i in range(0, len(batch), step):
            part = {k: v[i:i + step] for k, v in cols.items()}
            self._call(lambda _, p=part: col.upsert(**p))

    def delete(self, ids: Sequence[RecordId], namespace: str = "") -> None:
        keys = [i for i in ids if isinstance(i, str) and i] if not namespace else []
        col = self._collection()
        for i in range(0, len(keys), MAX_BATCH):
            self._call(lambda _, c=keys[i:i + MAX_BATCH]: col.delete(ids=c))

    def create(self, spec: TargetSpec) -> None:
        if spec.metric not in _TO_CHROMA or spec.sparse:
            raise TerminalError(f"chroma cannot hold '{spec.metric}' (cosine, euclidean, dot; no sparse)")
        if self._collection(must=False) is not None:
            raise TerminalError(f"chroma collection {self.collection} already exists")
        self._col = self._call(lambda c: c.create_collection(
            self.collection, embedding_function=None, metadata={_DIM_KEY: spec.dimension},
            configuration={"hnsw": {"space": _TO_CHROMA[spec.metric]}}))

    def drop(self) -> None:
        """Drops only a collection vmkit created (its metadata holds the dimension key)."""
        col = self._collection(must=False)
        if col is not None:
            if _DIM_KEY not in (col.metadata or {}):
                raise TerminalError(f"chroma collection {self.collection} was not made by vmkit: not dropped")
            self._call(lambda c: c.delete_collection(self.collection))
        self._col = None

    def sample(self, n: int, seed: int = 0) -> list[RecordBatch]:
        """About ``n`` records from up to 20 runs at random offsets over the whole collection
        (``get`` seeks by offset), not one read of everything."""
        col = self._collection()
        total = int(self._call(lambda _: col.count()))
        if total <= 2 * n:
            return super().sample(n, seed)
        runs = min(20, n)
        size = -(-n // runs)
        starts = sorted(random.Random(seed).sample(range(0, total - size + 1, size), runs))
        return [to_batch(self._call(lambda _, s=s: col.get(limit=size, offset=s, include=_INCLUDE)),
                         self._dimension(col)) for s in starts]

    # -- helpers ---------------------------------------------------------------------------
    def _dimension(self, col: Any) -> int | None:
        dim = getattr(col._model, "dimension", None) or (col.metadata or {}).get(_DIM_KEY)
        return int(dim) if dim else None


def _parse_cursor(cursor: str | None) -> tuple[int, str | None]:
    if cursor is None:
        return 0, None
    try:
        doc = orjson.loads(cursor)
        offset, last = int(doc["offset"]), doc["last"]
        if offset < 1 or not isinstance(last, str):
            raise ValueError(cursor)
        return offset, last
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise TerminalError(f"not a chroma scan cursor: {cursor[:80]!r}") from None


def _classify(exc: Exception) -> Exception:
    """Chroma's refusals of the data (InvalidArgumentError, ValueError from its validators) are
    InvalidData; connection trouble is transient; anything else terminal."""
    name, text = type(exc).__name__, str(exc)[:500]
    if name in {"NotFoundError"} or "does not exist" in text:
        return TerminalError(f"chroma: {name}: {text}")
    if name in {"InvalidArgumentError", "ValueError", "InvalidDimensionException", "DuplicateIDError"}:
        return InvalidData(f"chroma: {name}: {text}")
    if name in {"ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError"} or isinstance(exc, OSError):
        return TransientError(f"chroma: {name}: {text}")
    return TerminalError(f"chroma: {name}: {text}")


__all__ = ["DOCUMENT_KEY", "ChromaConnector"]
