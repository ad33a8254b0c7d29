"""A local Pinecone (REST, API version 2026-07) for tests that drive the real ``pinecone`` SDK.

One control-plane server (``emu.url``: point ``PINECONE_CONTROLLER_HOST`` at it) and one
data-plane server per index (``emu.host(name)``, also the ``host`` of its IndexModel), each a
``ThreadingHTTPServer`` on a free 127.0.0.1 port. Requests need ``Api-Key`` (401 otherwise) and
``X-Pinecone-Api-Version: 2026-07``. Rules and limits live in ``pinecone_store.py``.

Faults (``emu.faults``, changeable while running) apply to data-plane requests::

    emu.faults.rate_429 = 0.1       # chance a request starts a 429 burst
    emu.faults.burst_429 = 3        # requests each burst answers with 429
    emu.faults.retry_after = 1      # Retry-After seconds on injected 429s (None: no header)
    emu.faults.rate_5xx = 0.05      # chance of a 500/503
    emu.faults.ghost_writes = 0.5   # share of injected 5xx on writes that still apply the write
    emu.faults.latency_ms = 20      # added to every request
    emu.faults.lag_ms = 300         # writes become visible to fetch/list/query/stats this late
    emu.faults.list_lag_ms = 300    # ... to list (and the namespaces listing) this late instead
    emu.faults.stats_lag_ms = 5000  # ... to describe_index_stats this late instead (stats lag
                                    # writes more than list and fetch do, on the service too)
    emu.faults.exhausted = {"upsert"}  # ops answered 429 for good: the monthly write (or read)
                                    # unit cap of a Starter plan, which no retry clears
    emu.faults.inject(429, retry_after=2, times=4, op="upsert")   # exact, for one test
    emu.faults.unfetchable = {"doc-7"}  # ids that list and query but a fetch never returns

Query strings are read strictly, as the service reads them: ``+`` is a literal plus and only
``%20`` is a space (see ``parse_query``). A fetch, list, query or delete naming a namespace that
does not exist is answered 404 ``{"code": 5, "message": "Namespace not found"}``.

The documented request-per-second limits hold as on the service (``emu.rates``, see
``pinecone_rates.py``): ``emu.rates.limits["fetch"] = 20`` lowers one, ``emu.rates.limits = {}``
lifts them all.

Upsert bodies over ``emu.max_request_bytes`` (2 MB, as on the service; lower it to make a
client's own fitting under 2 MB fall short) are refused as ``emu.oversize`` says: ``"413"``
(413 with the service's JSON error), ``"400"`` (400 "Request size 2.1MB exceeds the maximum
supported size of 2MB", as the service answers through its gRPC gateway) or ``"bare413"``
(413 with an HTML body, as a proxy in front of the service answers).

``GET /namespaces`` lists namespaces (the SDK's ``Index.list_namespaces``), on the list lag.

Every request lands in ``emu.log`` (op, status, body bytes, record count, namespace).
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import numpy as np
import orjson
from emulators.pinecone_rates import RateLimits
from emulators.pinecone_store import (
    MAX_REQUEST_BYTES,
    ApiFailure,
    IndexState,
    Record,
    index_from_request,
)

log = logging.getLogger(__name__)

API_VERSION = "2026-07"
EMU_KEY = "pcsk_emulator-key-7c1f9a"  # the tests' API key: no error message may ever contain it
WRITES = frozenset({"upsert", "delete"})
DATA_OPS = frozenset({"upsert", "fetch", "list", "query", "delete", "stats", "list_namespaces"})
READS = frozenset({"fetch", "list", "query", "list_namespaces"})
_GRPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
               "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13,
               "UNAVAILABLE": 14, "UNAUTHENTICATED": 16}
_DATA_ROUTES = {("POST", "/vectors/upsert"): "upsert", ("GET", "/vectors/fetch"): "fetch",
                ("GET", "/vectors/list"): "list", ("POST", "/query"): "query",
                ("POST", "/vectors/delete"): "delete", ("POST", "/describe_index_stats"): "stats",
                ("GET", "/namespaces"): "list_namespaces"}


@dataclass
class Faults:
    rate_429: float = 0.0
    burst_429: int = 1
    retry_after: float | None = None
    rate_5xx: float = 0.0
    ghost_writes: float = 0.0
    latency_ms: float = 0.0
    lag_ms: float = 0.0
    list_lag_ms: float | None = None  # None: lag_ms
    stats_lag_ms: float | None = None  # None: lag_ms
    exhausted: set[str] = field(default_factory=set)  # ops answered 429 until cleared
    ops: frozenset[str] = DATA_OPS
    seed: int = 0
    unfetchable: set[str] = field(default_factory=set)  # ids a fetch never returns
    injected: int = 0  # faults served so far
    _script: deque = field(default_factory=deque, repr=False)
    _burst_left: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def inject(self, status: int, message: str = "", retry_after: float | None = None,
               times: int = 1, op: str | None = None) -> None:
        """Answer the next ``times`` data-plane requests (of ``op``, if given) with ``status``."""
        for _ in range(times):
            self._script.append((status, message, retry_after, op))

    def clear(self) -> None:
        self.rate_429 = self.rate_5xx = self.ghost_writes = self.latency_ms = self.lag_ms = 0.0
        self.retry_after, self._burst_left = None, 0
        self.list_lag_ms = self.stats_lag_ms = None
        self.exhausted = set()
        self._script.clear()
        self.unfetchable = set()

    def pick(self, op: str) -> tuple[ApiFailure | None, bool]:
        """The fault for this request, if any, and whether the write still applies."""
        with self._lock:
            if op in self.exhausted:
                self.injected += 1
                return _exhausted(op), False
            failure = self._scripted(op)
            if failure is None and op in self.ops:
                roll = self._rng.random()
                if self._burst_left > 0 or roll < self.rate_429:
                    self._burst_left = (self._burst_left or self.burst_429) - 1
                    failure = _throttle(self.retry_after)
                elif roll < self.rate_429 + self.rate_5xx:
                    status = self._rng.choice((500, 503))
                    failure = ApiFailure(status, "Internal error" if status == 500 else
                                         "Service unavailable", "INTERNAL" if status == 500
                                         else "UNAVAILABLE")
            if failure is None:
                return None, False
            self.injected += 1
            ghost = failure.status >= 500 and op in WRITES and self._rng.random() < self.ghost_writes
            return failure, ghost

    def _scripted(self, op: str) -> ApiFailure | None:
        for i, (status, message, retry_after, only) in enumerate(self._script):
            if only is None or only == op:
                del self._script[i]
                if status == 429:
                    return _throttle(retry_after, message)
                code = "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE"
                return ApiFailure(status, message or f"injected {status}", code)
        return None


def _throttle(retry_after: float | None, message: str = "") -> ApiFailure:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return ApiFailure(429, message or "Request failed. You've reached the max request rate "
                      "for this index. Retry with backoff.", "RESOURCE_EXHAUSTED", headers)


def _exhausted(op: str) -> ApiFailure:
    """The 429 of a monthly usage cap (docs.pinecone.io, "Rate limits", Monthly usage limits:
    Starter plans get 1,000,000 read units and 2,000,000 write units a month; "Reaching a
    monthly usage limit returns a 429 - TOO_MANY_REQUESTS. Upgrade your plan to continue.")."""
    kind, cap = ("read", "1,000,000") if op in READS else ("write", "2,000,000")
    return ApiFailure(429, f"Request failed. You've reached your {kind} unit limit of {cap} for "
                      "the current month on the Starter plan. Upgrade your plan to continue.",
                      "RESOURCE_EXHAUSTED")


@dataclass
class Logged:
    plane: str  # "control" or the index name
    op: str
    status: int
    nbytes: int
    records: int = 0
    namespace: str | None = None
    prefix: str | None = None  # a list request's id prefix and page size
    limit: int | None = None
    peer: int = 0  # the client's port: one per connection it kept open
    started: float = 0.0  # time.monotonic() when the request came in
    ended: float = 0.0  # and when its answer was ready (latency included)


class PineconeEmulator:
    def __init__(self, api_key: str = EMU_KEY, seed: int = 0,
                 faults: Faults | None = None) -> None:
        self.api_key = api_key
        self.faults = faults or Faults(seed=seed)
        self.rates = RateLimits()
        self.indexes: dict[str, IndexState] = {}
        self.log: list[Logged] = []
        self.polls_until_ready = 0  # describes answering "Initializing" after a create
        self.max_request_bytes = MAX_REQUEST_BYTES  # upsert bodies past this are refused
        self.oversize = "413"  # how: "413", "400" or "bare413" (see the module docstring)
        self._lock = threading.RLock()
        self._servers: dict[str | None, ThreadingHTTPServer] = {}
        self._serve(None)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url(None)

    def host(self, index: str) -> str:
        return self._url(index)

    def close(self) -> None:
        for name in list(self._servers):
            self._stop(name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self, index: str | None) -> str:
        handler = type("Handler", (_Handler,), {"emu": self, "index": index})
        server = _Server(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,),  # quick shutdown
                         name=f"pinecone-emu-{index}", daemon=True).start()
        self._servers[index] = server
        return self._url(index)

    def _stop(self, index: str | None) -> None:
        server = self._servers.pop(index, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def _url(self, index: str | None) -> str:
        return f"http://127.0.0.1:{self._servers[index].server_address[1]}"

    # -- direct helpers for tests (no HTTP, no faults) ----------------------------------------
    def create_index(self, name: str, dimension: int | None, metric: str = "cosine",
                     pod: bool = False, sparse: bool = False) -> IndexState:
        fields: dict[str, Any] = {}
        if dimension is not None:
            fields["_values"] = {"type": "dense_vector", "dimension": dimension, "metric": metric}
        if sparse:
            fields["_sparse_values"] = {"type": "sparse_vector"}
        body: dict[str, Any] = {"name": name, "schema": {"fields": fields}}
        if pod:
            body["deployment"] = {"deployment_type": "pod", "environment": "us-east-1-aws",
                                  "pod_type": "p1.x1", "replicas": 1, "shards": 1}
        return self._create(body, polls=0)

    def seed(self, index: str, records: Iterable[tuple[str, Any, dict | None, Any]],
             namespace: str = "") -> int:
        """Insert (id, values, metadata, sparse) rows, visible at once, through the same rules."""
        state, n = self.indexes[index], 0
        rows: dict[str, Record] = {}
        for rid, values, meta, sparse in records:
            vec: dict[str, Any] = {"id": rid, "values": np.asarray(values).tolist()}
            if meta is not None:
                vec["metadata"] = meta
            if sparse is not None:
                vec["sparseValues"] = {"indices": list(map(int, sparse[0])),
                                       "values": list(map(float, sparse[1]))}
            key, rec = state.parse_vector(vec)
            rows[key] = rec
            n += 1
        with self._lock:
            space = state.ns(namespace, create=True)
            assert space is not None
            space.listed_at = min(space.listed_at, time.monotonic())  # listed at once, too
            space.write("upsert", rows, 0.0)
        return n

    def requests(self, op: str | None = None, status: int | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if (op is None or r.op == op)
                    and (status is None or r.status == status)]

    # -- request handling --------------------------------------------------------------------
    def dispatch(self, index: str | None, method: str, target: str, headers: Any,
                 raw: bytes, peer: int = 0) -> tuple[int, bytes, dict[str, str]]:
        url = urlsplit(target)
        entry = Logged("control" if index is None else index, "?", 0, len(raw), peer=peer,
                       started=time.monotonic())
        try:
            if headers.get("Api-Key") != self.api_key:
                raise ApiFailure(401, "Invalid API Key", "UNAUTHENTICATED")
            if headers.get("X-Pinecone-Api-Version") != API_VERSION:
                raise ApiFailure(400, f"Unsupported API version; this service speaks {API_VERSION}")
            if index is None:
                status, out = self._control(method, url.path, raw, entry)
            else:
                status, out = 200, self._data(index, method, url, raw, entry)
            body, extra = (orjson.dumps(out) if out is not None else b""), {}
        except ApiFailure as f:
            status, extra = f.status, f.headers
            if f.code == "BARE":
                body = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>"
                extra = {"Content-Type": "text/html"}
            elif index is None:
                body = orjson.dumps({"error": {"code": f.code, "message": f.message},
                                     "status": f.status})
            else:
                body = orjson.dumps({"code": _GRPC_CODES.get(f.code, 2), "message": f.message,
                                     "details": []})
        entry.status, entry.ended = status, time.monotonic()
        with self._lock:
            self.log.append(entry)
        return status, body, extra

    def _control(self, method: str, path: str, raw: bytes, entry: Logged) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        entry.op = "list_indexes" if parts == ["indexes"] and method == "GET" else \
            f"{method.lower()}_index"
        with self._lock:
            if parts == ["indexes"] and method == "GET":
                return 200, {"indexes": [s.model() for s in self.indexes.values()]}
            if parts == ["indexes"] and method == "POST":
                return 201, self._create(_json(raw), self.polls_until_ready).model()
            if len(parts) != 2 or parts[0] != "indexes":
                raise ApiFailure(404, f"No route for {method} {path}", "NOT_FOUND")
            state = self.indexes.get(parts[1])
            if state is None:
                raise ApiFailure(404, f"Resource {parts[1]} not found", "NOT_FOUND")
            if method == "GET":
                model = state.model()
                state.polls_until_ready -= 1
                return 200, model
            if method == "DELETE":
                if state.deletion_protection == "enabled":
                    raise ApiFailure(403, "Deletion protection is enabled for this index",
                                     "PERMISSION_DENIED")
                del self.indexes[parts[1]]
                threading.Thread(target=self._stop, args=(parts[1],), daemon=True).start()
                return 202, None
        raise ApiFailure(405, f"{method} is not allowed on {path}", "INVALID_ARGUMENT")

    def _create(self, body: dict[str, Any], polls: int) -> IndexState:
        state = index_from_request(body)
        with self._lock:
            if state.name in self.indexes:
                raise ApiFailure(409, f"Resource {state.name} already exists", "ALREADY_EXISTS")
            state.polls_until_ready = polls
            self.indexes[state.name] = state
            state.host = self._serve(state.name)
        return state

    def _data(self, index: str, method: str, url: Any, raw: bytes, entry: Logged) -> Any:
        op = entry.op = _DATA_ROUTES.get((method, url.path), "?")
        if op == "?":
            raise ApiFailure(404, f"No route for {method} {url.path}", "NOT_FOUND")
        query = parse_query(url.query)
        body = _json(raw) if method == "POST" else {}
        entry.namespace = body.get("namespace", (query.get("namespace") or [None])[0])
        entry.records = len(body.get("vectors") or body.get("ids") or query.get("ids") or [])
        self.rates.admit(index, op, entry.namespace or "", entry.records, len(raw))
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        failure, ghost = self.faults.pick(op)
        if failure is not None and not ghost:
            raise failure
        if op == "upsert" and len(raw) > self.max_request_bytes:
            raise self._oversized(len(raw))
        lag = self.faults.lag_ms / 1000
        with self._lock:
            state = self.indexes.get(index)
            if state is None:
                raise ApiFailure(404, f"Index {index} not found", "NOT_FOUND")
            state.view_lags = {
                "list": None if self.faults.list_lag_ms is None else self.faults.list_lag_ms / 1000,
                "stats": None if self.faults.stats_lag_ms is None else self.faults.stats_lag_ms / 1000}
            if op == "list_namespaces":
                limit = (query.get("limit") or ["100"])[0]
                if not limit.isdigit():
                    raise ApiFailure(400, "limit must be an integer")
                out = state.list_namespaces((query.get("prefix") or [""])[0], int(limit),
                                            (query.get("paginationToken") or [None])[0])
            elif op == "upsert":
                out = state.upsert(body, lag)
            elif op == "fetch":
                out = state.fetch(query.get("ids", []), entry.namespace)
                for rid in self.faults.unfetchable & set(out["vectors"]):
                    del out["vectors"][rid]
            elif op == "list":
                limit = (query.get("limit") or ["100"])[0]
                if not limit.isdigit():
                    raise ApiFailure(400, "limit must be an integer")
                entry.prefix, entry.limit = (query.get("prefix") or [""])[0], int(limit)
                out = state.list(entry.namespace, entry.prefix, entry.limit,
                                 (query.get("paginationToken") or [None])[0])
            elif op == "query":
                out = state.query(body)
            elif op == "delete":
                out = state.delete(body, lag)
            else:
                out = state.stats(body)
        if failure is not None:
            raise failure  # a ghost write: applied, yet the client hears an error
        return out


    def _oversized(self, size: int) -> ApiFailure:
        """An upsert body over the limit, answered as ``self.oversize`` says. The 400 and 413
        texts are the service's ("Request size ... exceeds the maximum supported size", issue
        21); a proxy's 413 carries no JSON at all."""
        limit = self.max_request_bytes / 2**20
        text = (f"Request size {size / 2**20:.1f}MB exceeds the maximum supported size of "
                f"{limit:g}MB")
        if self.oversize == "400":
            return ApiFailure(400, text)
        if self.oversize == "bare413":
            return ApiFailure(413, text, "BARE")
        return ApiFailure(413, text)


def parse_query(query: str) -> dict[str, list[str]]:
    """A query string read strictly, as the service reads it: ``%XX`` decoded, ``+`` kept as a
    literal plus. Not ``parse_qs``, which reads ``+`` as a space (form encoding).

    Where this comes from: the pinecone 10.2 SDK (``pinecone/index/__init__.py``,
    ``Index.fetch`` and ``Index.list_paginated``) passes ``params`` to httpx, which writes a
    space as ``+`` (``fetch(ids=["doc 1"], namespace="ns x")`` goes out as
    ``/vectors/fetch?ids=doc+1&namespace=ns+x``), and the service read such a ``+`` as a plus
    when an earlier SDK encoded spaces that way (pinecone-io/python-sdk#372: "no results
    returned, even when vector exists"). An emulator that decoded ``+`` as a space would hide
    the records that request loses."""
    out: dict[str, list[str]] = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            out.setdefault(unquote(key), []).append(unquote(value))
    return out


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiFailure(400, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiFailure(400, "Request body must be a JSON object")
    return body


class _Server(ThreadingHTTPServer):
    # The service takes as many connections as clients open. socketserver's default backlog
    # of 5 drops connections a client opens at once beyond it, and the SDK waits out its
    # 30 s timeout for an answer.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # a client dropped its connection
            log.debug("client %s went away: %s", client_address, exc)
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    disable_nagle_algorithm = True  # else headers and body wait out the client's delayed ACK
    emu: PineconeEmulator
    index: str | None

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body, extra = self.emu.dispatch(self.index, self.command, self.path,
                                                self.headers, raw, self.client_address[1])
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
