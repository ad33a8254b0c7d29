"""A Weaviate server emulator (REST + gRPC) that the official weaviate-client v4 drives
unmodified. Binds 127.0.0.1 on free ports; seeded, runtime-adjustable fault injection.

    with WeaviateEmulator() as emu:
        client = emu.client()                 # weaviate.connect_to_custom(...)
        emu.faults.object_fail_ids = {uid}    # that object fails inside a successful batch
        emu.faults.fail_next = ["UNAVAILABLE"]  # the next gRPC call is refused
        emu.faults.fail_next = ["UNKNOWN: " + CONSISTENCY_ALL]  # a status and the server's text
        emu.faults.batch_fail_next = [READ_ONLY] * 6  # 6 BatchObjects calls: every object fails

Texts are the server's: Weaviate classes "not enough memory", "store is read-only" (disk
pressure) and "no space left on device" as temporary (``entities/errors/transient.go``,
``IsTransient``) and returns them per object inside a successful batch; its gRPC handlers return
plain Go errors, which grpc-go sends as status UNKNOWN with the error's text.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Self

import grpc
from weaviate.proto.v1 import weaviate_pb2_grpc

from .weaviate_grpc import WeaviateServicer, health_handler
from .weaviate_rest import RestApp, handler_class
from .weaviate_store import Store

log = logging.getLogger(__name__)

TRANSIENT_OBJECT_ERROR = "put object: context deadline exceeded (injected)"
# Temporary conditions as the server words them (entities/errors/transient.go, storagestate,
# syscall.ENOSPC, usecases/replica MsgCLevel), wrapped the way the shard wraps them.
READ_ONLY = "put object: import into index docs: shard docs_0: store is read-only"
NO_SPACE = "put object: write wal: no space left on device"
NOT_ENOUGH_MEMORY = "put object: memory pressure: not enough memory"
CONSISTENCY_ALL = "cannot achieve consistency level ALL: read error: cannot reach enough replicas"
# a lazily loaded shard under memory pressure (adapters/repos/db/shard_lazyloader.go, Load)
LAZY_LOAD = "memory pressure: cannot load shard: not enough memory mappings"


@dataclass
class Faults:
    """What goes wrong, and how often. Every field may be changed while the server runs."""

    seed: int = 0
    latency_s: float = 0.0  # sleep before every gRPC and REST call
    unavailable_rate: float = 0.0  # gRPC calls refused with UNAVAILABLE at this rate
    # statuses for the next gRPC calls: "UNAVAILABLE", or "UNKNOWN: <server text>"
    fail_next: list[str] = field(default_factory=list)
    methods: frozenset[str] | None = None  # gRPC methods faults hit (None: all but Health)
    object_fail_rate: float = 0.0  # objects failing inside BatchObjects at this rate
    object_fail_transient: bool = False  # rate failures look transient (else invalid data)
    object_fail_ids: set[str] = field(default_factory=set)  # these uuids always fail (terminal)
    object_transient_ids: dict[str, int] = field(default_factory=dict)  # uuid -> failures left
    # An episode counted in BatchObjects calls: each call pops one message and every object of
    # it fails with that text (e.g. [READ_ONLY] * 6: six calls while the disk is full).
    batch_fail_next: list[str] = field(default_factory=list)
    http_fail_next: list[int] = field(default_factory=list)  # statuses for the next REST calls
    injected: int = 0  # how many faults fired
    busiest: int = 0  # most gRPC calls seen waiting out their latency at once

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()
        self._waiting = 0

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def call_fault(self, method: str) -> str | None:
        """Status-code name to refuse a gRPC call with, or None."""
        if self.latency_s:
            with self.lock:
                self._waiting += 1
                self.busiest = max(self.busiest, self._waiting)
            time.sleep(self.latency_s)
            with self.lock:
                self._waiting -= 1
        if method == "Health" or (self.methods is not None and method not in self.methods):
            return None
        with self.lock:
            if self.fail_next:
                self.injected += 1
                return self.fail_next.pop(0)
            if self.unavailable_rate and self.rng.random() < self.unavailable_rate:
                self.injected += 1
                return "UNAVAILABLE"
        return None

    def object_fault(self, uid: str) -> str | None:
        with self.lock:
            uid = uid.lower()
            if uid in self.object_fail_ids:
                self.injected += 1
                return f"invalid object: injected failure for {uid}"
            if self.object_transient_ids.get(uid, 0) > 0:
                self.object_transient_ids[uid] -= 1
                self.injected += 1
                return TRANSIENT_OBJECT_ERROR
            if self.object_fail_rate and self.rng.random() < self.object_fail_rate:
                self.injected += 1
                return TRANSIENT_OBJECT_ERROR if self.object_fail_transient else \
                    f"invalid object: injected failure for {uid}"
        return None

    def batch_fault(self) -> str | None:
        with self.lock:
            if self.batch_fail_next:
                self.injected += 1
                return self.batch_fail_next.pop(0)
        return None

    def http_fault(self) -> int | None:
        if self.latency_s:
            time.sleep(self.latency_s)
        with self.lock:
            if self.http_fail_next:
                self.injected += 1
                return self.http_fail_next.pop(0)
        return None


class WeaviateEmulator:
    def __init__(self, *, version: str = "1.33.0", api_key: str | None = None,
                 faults: Faults | None = None, autoschema: bool = True) -> None:
        self.version = version
        self.api_key = api_key
        self.faults = faults or Faults()
        self.store = Store(autoschema=autoschema)
        self.servicer = WeaviateServicer(self.store, self._grpc_guard, self.faults_object,
                                         lambda: self.faults.batch_fault())
        self.http_port = 0
        self.grpc_port = 0
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None

    # faults are looked up at call time so tests may swap ``emu.faults`` wholesale
    def faults_object(self, uid: str) -> str | None:
        return self.faults.object_fault(uid)

    def _grpc_guard(self, method: str, context: grpc.ServicerContext) -> None:
        if self.api_key is not None:
            auth = dict(context.invocation_metadata()).get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or missing api key")
        code = self.faults.call_fault(method)
        if code is not None:
            code, _, text = code.partition(": ")
            context.abort(getattr(grpc.StatusCode, code), text or f"{code.lower()} (injected by emulator)")

    def _rest_guard(self, path: str, headers: dict[str, str]) -> int | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401
        return self.faults.http_fault()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> WeaviateEmulator:
        app = RestApp(self.store, self.version, self._rest_guard)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(app))
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="weaviate-emu-rest", daemon=True).start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                 options=[("grpc.max_receive_message_length", 104858000)])
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(self.servicer, self._grpc)
        self._grpc.add_generic_rpc_handlers((health_handler(self._grpc_guard),))
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        log.info("weaviate emulator on http %d, grpc %d", self.http_port, self.grpc_port)
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def reset(self) -> None:
        """Empty store, no faults: a fresh server without a restart."""
        self.store.reset()
        self.faults = Faults()
        self.servicer.calls.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------------
    def uri(self, collection: str, **params: Any) -> str:
        """A vmkit ``weaviate://`` URI for a collection on this emulator."""
        query = "&".join([f"grpc_port={self.grpc_port}"] + [f"{k}={v}" for k, v in params.items()])
        return f"weaviate://127.0.0.1:{self.http_port}/{collection}?{query}"

    def client(self, api_key: str | None = None) -> Any:
        import weaviate
        from weaviate.classes.init import Auth

        return weaviate.connect_to_custom(
            http_host="127.0.0.1", http_port=self.http_port, http_secure=False,
            grpc_host="127.0.0.1", grpc_port=self.grpc_port, grpc_secure=False,
            auth_credentials=Auth.api_key(api_key) if api_key else None, skip_init_checks=True)
