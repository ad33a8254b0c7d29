"""State and rules behind the Pinecone emulator: indexes, namespaces, limits, visibility lag.

No HTTP here (pinecone_emulator.py serves it). Every rule answers the way the 2026-07 service
does, as an ``ApiFailure(status, message)``. Facts checked against the pinecone 10.2 SDK source
and Pinecone's published limits:

- upsert: at most 1000 records (400) and 2 MB of body (413); ids 1-512 ASCII characters; dense
  values exactly the index dimension with at least one non-zero; sparse at most 1000
  non-zeros; metadata values string, number, bool or list of strings, at most 40 KB. Null
  metadata values are stripped, not refused (the SDK documents the server's
  ``NullHandling::Strip``); numbers are stored as float64, so ints come back as floats.
- fetch and delete: at most 1000 ids. list: limit 1..100, ids in bytewise order, a
  ``pagination.next`` token whenever a page is full, none on the last page; serverless only.
- the default namespace is ``""`` on the wire, ``"__default__"`` in stats and as an alias.
- a namespace exists once a record was upserted into it (the default one included); fetch,
  list, query and delete on one that does not are answered 404 ``{"code": 5, "message":
  "Namespace not found"}``, as the service answers a delete (and public fakes of it a fetch or
  query) for a missing namespace.

- the namespaces listing (``GET /namespaces``) names a namespace once it was written (and its
  list lag passed); creating, describing or deleting a namespace on its own is not emulated.

Not emulated (answered 400 or 404): metadata filters, update, namespace create/describe/delete,
imports, document indexes, gRPC.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

MAX_UPSERT_RECORDS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_IDS = 1000  # per fetch and per delete
MAX_ID_LEN = 512
MAX_METADATA_BYTES = 40 * 1024
MAX_SPARSE_NNZ = 1000
MAX_DIMENSION = 20_000
LIST_LIMIT_MAX = 100
TOP_K_MAX = 10_000
QUERY_READ_UNITS = 5  # what a query costs here (``usage.readUnits``; the service: more, the
                      # bigger the namespace)
DEFAULT_NS = "__default__"
METRICS = ("cosine", "euclidean", "dotproduct")


class ApiFailure(Exception):
    """An error response: HTTP status, gRPC-style code name and the service's message."""

    def __init__(self, status: int, message: str, code: str = "INVALID_ARGUMENT",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}


def bad(message: str) -> ApiFailure:
    return ApiFailure(400, message)


@dataclass
class Record:
    values: np.ndarray  # float32; empty for a sparse-only index
    sparse: tuple[list[int], list[float]] | None
    metadata: dict[str, Any] | None

    def wire(self, rid: str, values: bool = True, metadata: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": rid}
        if values:
            out["values"] = self.values.tolist()
            if self.sparse is not None:
                out["sparseValues"] = {"indices": self.sparse[0], "values": self.sparse[1]}
        if metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


VIEWS = ("list", "stats")  # reads that see writes on a lag of their own (fetch/query: ``rows``)


class Namespace:
    """Visible rows plus writes still in flight (each visible from its own deadline, in order).

    Fetch and query read ``rows``; list and stats each read a view of the ids of their own,
    fed the same writes on their own lag: on the service ``describe_index_stats`` lags writes
    more than list and fetch do ("The counts lag writes", SDK ``Index.describe_index_stats``
    docstring), so a namespace written just now can be listed and fetched before stats count it.
    """

    def __init__(self, listed_at: float = 0.0) -> None:
        self.rows: dict[str, Record] = {}
        self.pending: deque[tuple[float, str, Any]] = deque()  # (visible_at, op, payload)
        self.view_ids: dict[str, set[str]] = {v: set() for v in VIEWS}
        self.view_pending: dict[str, deque[tuple[float, str, Any]]] = {v: deque() for v in VIEWS}
        self.listed_at = listed_at  # when the namespaces listing first names it
        self._sorted: list[bytes] | None = None
        self._matrix: tuple[list[str], np.ndarray] | None = None

    def write(self, op: str, payload: Any, lag_s: float,
              view_lags: dict[str, float | None] | None = None) -> None:
        now = time.monotonic()
        self.pending.append((now + lag_s, op, payload))
        for view in VIEWS:
            lag = (view_lags or {}).get(view)
            self.view_pending[view].append((now + (lag_s if lag is None else lag), op, payload))
        self.settle()

    def settle(self) -> None:
        now = time.monotonic()
        while self.pending and self.pending[0][0] <= now:
            _, op, payload = self.pending.popleft()
            if op == "upsert":
                self.rows.update(payload)
            elif op == "delete_all":
                self.rows.clear()
            else:
                for rid in payload:
                    self.rows.pop(rid, None)
            self._matrix = None
        for view, queue in self.view_pending.items():
            ids = self.view_ids[view]
            while queue and queue[0][0] <= now:
                _, op, payload = queue.popleft()
                if op == "upsert":
                    ids.update(payload)
                elif op == "delete_all":
                    ids.clear()
                else:
                    ids.difference_update(payload)
                if view == "list":
                    self._sorted = None

    def matrix(self) -> tuple[list[str], np.ndarray]:
        """The ids in bytewise order and their dense values, one row each (float64)."""
        if self._matrix is None:
            ids = sorted(self.rows, key=str.encode)
            self._matrix = ids, np.asarray([self.rows[i].values for i in ids], np.float64)
        return self._matrix

    def sorted_ids(self) -> list[bytes]:
        """The ids a listing sees (the list view), in bytewise order."""
        if self._sorted is None:
            self._sorted = sorted(rid.encode() for rid in self.view_ids["list"])
        return self._sorted


def _token(last: bytes) -> str:
    return base64.urlsafe_b64encode(b"v1:" + last).decode()


def _untoken(token: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if not raw.startswith(b"v1:"):
        raise bad("Invalid pagination token")
    return raw[3:]


def _canonical_ns(ns: Any) -> str:
    if ns is None:
        return ""
    if not isinstance(ns, str) or len(ns) > 512 or not ns.isascii() or "\x00" in ns:
        # the SDK's rule (pinecone/_internal/validation.py, require_valid_namespace_name)
        raise bad("Namespace name must be ASCII without NUL and at most 512 characters")
    return "" if ns == DEFAULT_NS else ns


def _metadata(rid: str, meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise bad(f"Metadata of vector {rid} must be an object")
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key.startswith("$"):
            raise bad(f"Metadata key '{key}' of vector {rid} must not start with '$'")
        if value is None:
            continue  # stripped by the service, not refused
        if isinstance(value, (bool, str)):
            out[key] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)  # the service stores every number as float64
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = value
        else:
            shown = orjson.dumps(value).decode()[:16]
            raise bad(
                "Metadata value must be a string, number, boolean or list of strings, "
                f"got '{shown}' for field '{key}'"
            )
    size = len(orjson.dumps(out))
    if size > MAX_METADATA_BYTES:
        raise bad(f"Metadata size is {size} bytes, which exceeds the limit of "
                  f"{MAX_METADATA_BYTES} bytes per vector")
    return out


def _sparse(rid: str, raw: Any) -> tuple[list[int], list[float]] | None:
    if raw is None:
        return None
    idx, vals = raw.get("indices"), raw.get("values")
    if not isinstance(idx, list) or not isinstance(vals, list) or len(idx) != len(vals):
        raise bad(f"Sparse vector {rid}: indices and values must be lists of the same length")
    if len(idx) > MAX_SPARSE_NNZ:
        raise bad(f"Sparse vector {rid} has {len(idx)} non-zero values, more than the maximum "
                  f"of {MAX_SPARSE_NNZ}")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2**32 for i in idx):
        raise bad(f"Sparse vector {rid}: indices must be unsigned 32-bit integers")
    if len(set(idx)) != len(idx):
        raise bad(f"Sparse vector {rid} has duplicate indices")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
        raise bad(f"Sparse vector {rid}: values must be numbers")
    order = sorted(range(len(idx)), key=idx.__getitem__)
    f32 = np.asarray([vals[o] for o in order], np.float32)
    return [idx[o] for o in order], f32.tolist()


@dataclass
class IndexState:
    name: str
    dimension: int | None  # None: sparse-only index
    metric: str
    deployment: dict[str, Any]
    sparse_field: bool = False
    deletion_protection: str = "disabled"
    host: str = ""
    polls_until_ready: int = 0
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    view_lags: dict[str, float | None] = field(default_factory=dict)  # list/stats lag, seconds

    @property
    def pod(self) -> bool:
        return self.deployment.get("deployment_type") == "pod"

    def model(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.dimension is not None:
            fields["_values"] = {"type": "dense_vector", "dimension": self.dimension,
                                 "metric": self.metric}
        if self.sparse_field:
            fields["_sparse_values"] = {"type": "sparse_vector"}
        ready = self.polls_until_ready <= 0
        return {
            "name": self.name,
            "status": {"ready": ready, "state": "Ready" if ready else "Initializing"},
            "schema": {"fields": fields},
            "deployment": self.deployment,
            "deletion_protection": self.deletion_protection,
            "host": self.host,
            "tags": None,
        }

    def existing(self, name: Any) -> Namespace:
        """The namespace a read or delete names, or the service's 404 for a missing one."""
        space = self.ns(name)
        if space is None:
            raise ApiFailure(404, "Namespace not found", "NOT_FOUND")
        return space

    def ns(self, name: Any, create: bool = False, lag_s: float = 0.0) -> Namespace | None:
        key = _canonical_ns(name)
        space = self.namespaces.get(key)
        if space is None and create:
            list_lag = self.view_lags.get("list")
            space = self.namespaces[key] = Namespace(
                time.monotonic() + (lag_s if list_lag is None else list_lag))
        if space is not None:
            space.settle()
        return space

    # -- data plane --------------------------------------------------------------------------
    def parse_vector(self, v: Any) -> tuple[str, Record]:
        rid = v.get("id") if isinstance(v, dict) else None
        if not isinstance(rid, str) or not 1 <= len(rid) <= MAX_ID_LEN:
            raise bad(f"Vector ID must be a string of 1-{MAX_ID_LEN} characters")
        if not rid.isascii():
            raise bad(f"ID must be ASCII, but got '{rid}'")
        values = v.get("values") or []
        if not isinstance(values, list) or any(
            isinstance(x, bool) or not isinstance(x, (int, float)) for x in values
        ):
            raise bad(f"Vector {rid}: values must be a list of numbers")
        arr = np.asarray(values, np.float32)
        if self.dimension is None:
            if len(arr):
                raise bad(f"Vector {rid}: a sparse index takes no dense values")
        elif len(arr) != self.dimension:
            raise bad(f"Vector dimension {len(arr)} does not match the dimension of the index "
                      f"{self.dimension}")
        elif not np.isfinite(arr).all():
            raise bad(f"Vector {rid}: dense values must be finite")
        elif not arr.any():
            raise bad(f"Dense vectors must contain at least one non-zero value. Vector ID {rid} "
                      "contains only zeros.")
        sparse = _sparse(rid, v.get("sparseValues"))
        if self.dimension is None and not sparse:
            raise bad(f"Vector {rid}: a sparse index needs sparse values")
        return rid, Record(arr, sparse, _metadata(rid, v.get("metadata")))

    def upsert(self, body: dict[str, Any], lag_s: float) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise bad("vectors must be a non-empty list")
        if len(vectors) > MAX_UPSERT_RECORDS:
            raise bad(f"Batch size exceeds {MAX_UPSERT_RECORDS}. Upsert at most "
                      f"{MAX_UPSERT_RECORDS} vectors per request.")
        rows = dict(self.parse_vector(v) for v in vectors)  # all or nothing, like the service
        self.ns(body.get("namespace"), create=True, lag_s=lag_s).write(  # type: ignore[union-attr]
            "upsert", rows, lag_s, self.view_lags)
        return {"upsertedCount": len(vectors)}

    def fetch(self, ids: list[str], namespace: str | None) -> dict[str, Any]:
        if not ids:
            raise bad("ids must contain at least one id")
        if len(ids) > MAX_IDS:
            raise bad(f"Max IDs per fetch is {MAX_IDS}, got {len(ids)}")
        rows = self.existing(namespace).rows
        found = {rid: rows[rid].wire(rid) for rid in ids if rid in rows}
        return {"vectors": found, "namespace": namespace or "",
                "usage": {"readUnits": max(1, len(found) // 10)}}

    def list(self, namespace: str | None, prefix: str, limit: int, token: str | None) -> dict:
        if self.pod:
            raise bad("List operation is not supported for pod-based indexes; it is "
                      "available on serverless indexes only")
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise bad(f"limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
        after = _untoken(token) if token else None  # a forged token is a 400 first
        ids = self.existing(namespace).sorted_ids()
        pre = prefix.encode()
        start = bisect.bisect_left(ids, pre)
        if after is not None:
            start = max(start, bisect.bisect_right(ids, after))
        page = []
        for key in ids[start:]:
            if not key.startswith(pre) or len(page) == limit:
                break
            page.append(key)
        out: dict[str, Any] = {"vectors": [{"id": k.decode()} for k in page],
                               "namespace": namespace or "", "usage": {"readUnits": 1}}
        if len(page) == limit:
            out["pagination"] = {"next": _token(page[-1])}
        return out

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= TOP_K_MAX:
            raise bad(f"topK must be an integer between 1 and {TOP_K_MAX}")
        if body.get("filter"):
            raise bad("metadata filters are not supported by this emulator")
        space = self.existing(body.get("namespace"))
        rows = space.rows
        dense, sparse = body.get("vector"), body.get("sparseVector")
        if body.get("id") is not None:
            rec = rows.get(body["id"])
            if rec is None:
                return {"matches": [], "namespace": body.get("namespace") or ""}
            dense, sparse = rec.values, None
        if dense is None and sparse is None:
            raise bad("query needs a vector, a sparse vector or an id")
        if sparse is not None and self.metric != "dotproduct":
            raise bad("Cannot query with sparse values: only dotproduct indexes support them")
        q = np.asarray(dense if dense is not None else [], np.float32)
        if self.dimension is not None and dense is not None and len(q) != self.dimension:
            raise bad(f"Query vector dimension {len(q)} does not match the dimension of the "
                      f"index {self.dimension}")
        matches = []
        for score, rid in self._nearest(space, q, sparse, top_k):
            m = rows[rid].wire(rid, body.get("includeValues", False),
                               body.get("includeMetadata", False))
            matches.append({**m, "score": score})
        return {"matches": matches, "namespace": body.get("namespace") or "",
                "usage": {"readUnits": QUERY_READ_UNITS}}

    def _nearest(self, space: Namespace | None, q: np.ndarray, sq: dict | None, top_k: int
                 ) -> list[tuple[float, str]]:
        """(score, id) of the ``top_k`` best, best first; ties by id, descending but for
        euclidean. A dense query is scored over all rows at once, as an index answers in about
        the same time whatever its size."""
        if space is None or not space.rows:
            return []
        descending = self.metric != "euclidean"
        if sq is not None or not len(q):
            return sorted(((self._score(q, sq, r), rid) for rid, r in space.rows.items()),
                          reverse=descending)[:top_k]
        ids, values = space.matrix()
        q64 = q.astype(np.float64)
        if self.metric == "euclidean":
            scores = np.sum((values - q64) ** 2, axis=1)
        else:
            scores = values @ q64
            if self.metric == "cosine":
                norms = np.linalg.norm(values, axis=1) * np.linalg.norm(q64)
                scores = np.divide(scores, norms, out=np.zeros_like(scores), where=norms != 0)
        rank = np.arange(len(ids))  # ids are in bytewise order
        order = np.lexsort((-rank, -scores) if descending else (rank, scores))[:top_k]
        return [(float(scores[i]), ids[i]) for i in order]

    def _score(self, q: np.ndarray, sq: dict | None, r: Record) -> float:
        if self.metric == "euclidean":
            return float(np.sum((q.astype(np.float64) - r.values) ** 2))
        dot = float(np.dot(q.astype(np.float64), r.values)) if len(q) else 0.0
        if self.metric == "cosine":
            norm = float(np.linalg.norm(q) * np.linalg.norm(r.values))
            return dot / norm if norm else 0.0
        if sq and r.sparse:
            weights = dict(zip(*r.sparse))
            dot += sum(v * weights.get(i, 0.0) for i, v in zip(sq["indices"], sq["values"]))
        return dot

    def delete(self, body: dict[str, Any], lag_s: float) -> dict[str, Any]:
        ids, delete_all = body.get("ids"), body.get("deleteAll", False)
        if body.get("filter"):
            raise bad("metadata filters are not supported by this emulator")
        if delete_all and ids:
            raise bad("No explicit IDs allowed when delete_all=true")
        if not delete_all and not ids:
            raise bad("Must specify one of ids, delete_all, or filter")
        if ids and len(ids) > MAX_IDS:
            raise bad(f"Max IDs per delete is {MAX_IDS}, got {len(ids)}")
        space = self.existing(body.get("namespace"))
        space.write("delete_all" if delete_all else "delete", list(ids or []), lag_s, self.view_lags)
        return {}

    def list_namespaces(self, prefix: str, limit: int, token: str | None) -> dict[str, Any]:
        """``GET /namespaces``: the namespaces the index holds, by name in bytewise order, a page
        of ``limit`` (1-100, the SDK's ``NAMESPACE_LIST_LIMIT_MAX``) at a time. Shape of the
        SDK's ``ListNamespacesResponse`` (``pinecone/models/namespaces/models.py``), with
        ``record_count`` as a string, as the service sends it (``VectorsAdapter.
        to_list_namespaces_response`` decodes it laxly for that reason). A namespace is named
        here once the list lag has passed since it was first written."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise bad(f"limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
        after = _untoken(token) if token else None
        now = time.monotonic()
        names = sorted((((n or DEFAULT_NS).encode(), n) for n, space in self.namespaces.items()
                        if space.listed_at <= now and (n or DEFAULT_NS).startswith(prefix)))
        if after is not None:
            names = [(k, n) for k, n in names if k > after]
        page = names[:limit]
        out: dict[str, Any] = {
            "namespaces": [{"name": key.decode(), "record_count":
                            str(len(self.ns(n).view_ids["list"]))}  # type: ignore[union-attr]
                           for key, n in page],
            "total_count": len(names),
        }
        if len(names) > limit:
            out["pagination"] = {"next": _token(page[-1][0])}
        return out

    def stats(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("filter"):
            raise bad("describe_index_stats does not accept a filter on this index")
        counts = {}
        for name in list(self.namespaces):
            n = len(self.ns(name).view_ids["stats"])  # type: ignore[union-attr]
            if n:
                counts[name or DEFAULT_NS] = {"vectorCount": n}
        return {
            "namespaces": counts,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
            "metric": self.metric,
            "vectorType": "dense" if self.dimension is not None else "sparse",
        }


def index_from_request(body: dict[str, Any]) -> IndexState:
    """Validate a 2026-07 ``POST /indexes`` body (vector indexes only: ``_values``/``_sparse_values``)."""
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 45 or not all(
        c.isdigit() or ("a" <= c <= "z") or c == "-" for c in name
    ) or name[0] == "-" or name[-1] == "-":
        raise bad("Name must be 1-45 characters: lowercase letters, digits and hyphens")
    fields = (body.get("schema") or {}).get("fields")
    if not isinstance(fields, dict) or not fields or set(fields) - {"_values", "_sparse_values"}:
        raise bad("schema.fields must declare '_values' (dense_vector) and/or '_sparse_values' "
                  "(sparse_vector); other fields are not supported by this emulator")
    dense = fields.get("_values")
    dimension, metric = None, "dotproduct"
    if dense is not None:
        dimension, metric = dense.get("dimension"), dense.get("metric", "cosine")
        if dense.get("type") != "dense_vector" or not isinstance(dimension, int) \
                or not 1 <= dimension <= MAX_DIMENSION:
            raise bad(f"_values must be a dense_vector with a dimension of 1-{MAX_DIMENSION}")
        if metric not in METRICS:
            raise bad(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if "_sparse_values" in fields and fields["_sparse_values"].get("type") != "sparse_vector":
        raise bad("_sparse_values must be a sparse_vector field")
    deployment = body.get("deployment") or {"deployment_type": "managed", "cloud": "aws",
                                            "region": "us-east-1"}
    if deployment.get("deployment_type") not in ("managed", "pod"):
        raise bad("deployment_type must be 'managed' or 'pod' on this emulator")
    return IndexState(name, dimension, metric, deployment, "_sparse_values" in fields,
                      body.get("deletion_protection") or "disabled")
