"""REST side of the Weaviate emulator (stdlib http.server): meta, readiness, schema, tenants,
single objects and nodes, the routes weaviate-client v4 uses."""

from __future__ import annotations

import copy
import json
import logging
import re
import struct
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .weaviate_store import Store, StoreError, canonical_uuid

log = logging.getLogger(__name__)
_STATUS = {"invalid": 422, "not_found": 404, "conflict": 422}
# Tenant statuses as REST reports them (the SDK's TenantActivityStatus names; gRPC keeps the old ones).
_TENANT_REST = {"HOT": "ACTIVE", "COLD": "INACTIVE", "FROZEN": "OFFLOADED", "FREEZING": "OFFLOADING",
                "UNFREEZING": "ONLOADING"}


def _floats(v: Any) -> Any:
    """REST numbers are json.Number: auto-schema treats them as ``number`` like the server."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, list):
        return [_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    return v


def _vec(values: list[Any]) -> tuple[int, bytes]:
    if values and isinstance(values[0], list):  # multi-vector: uint16 dim prefix + rows
        flat = [x for row in values for x in row]
        return 2, struct.pack("<H", len(values[0])) + struct.pack(f"<{len(flat)}f", *flat)
    return 1, struct.pack(f"<{len(values)}f", *values)


class RestApp:
    """Routing and handlers; ``guard`` returns an HTTP status to answer instead (auth, faults)."""

    def __init__(self, store: Store, version: str, guard: Callable[[str, dict[str, str]], int | None]) -> None:
        self.store, self.version, self.guard = store, version, guard
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(r"/v1/meta"), self.meta),
            ("GET", re.compile(r"/v1/nodes"), self.nodes),
            ("GET", re.compile(r"/v1/schema"), self.list_classes),
            ("POST", re.compile(r"/v1/schema"), self.create_class),
            ("GET", re.compile(r"/v1/schema/(\w+)"), self.get_class),
            ("DELETE", re.compile(r"/v1/schema/(\w+)"), self.delete_class),
            ("POST", re.compile(r"/v1/schema/(\w+)/properties"), self.add_property),
            ("GET", re.compile(r"/v1/schema/(\w+)/shards"), self.shards),
            ("GET", re.compile(r"/v1/schema/(\w+)/tenants"), self.get_tenants),
            ("POST", re.compile(r"/v1/schema/(\w+)/tenants"), self.add_tenants),
            ("PUT", re.compile(r"/v1/schema/(\w+)/tenants"), self.add_tenants),
            ("DELETE", re.compile(r"/v1/schema/(\w+)/tenants"), self.remove_tenants),
            ("GET", re.compile(r"/v1/schema/(\w+)/tenants/([\w-]+)"), self.get_tenant),
            ("HEAD", re.compile(r"/v1/schema/(\w+)/tenants/([\w-]+)"), self.get_tenant),
            ("POST", re.compile(r"/v1/objects"), self.insert_object),
            ("GET", re.compile(r"/v1/objects/(\w+)/([0-9a-fA-F-]+)"), self.get_object),
            ("HEAD", re.compile(r"/v1/objects/(\w+)/([0-9a-fA-F-]+)"), self.head_object),
            ("DELETE", re.compile(r"/v1/objects/(\w+)/([0-9a-fA-F-]+)"), self.delete_object),
        ]

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any) -> tuple[int, Any]:
        if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
            return 200, None
        if path == "/v1/.well-known/openid-configuration":
            return 404, None  # no OIDC: anonymous or API-key auth
        status = self.guard(path, headers)
        if status is not None:
            return status, {"error": [{"message": f"emulator answered {status}"}]}
        for verb, pattern, fn in self.routes:
            m = pattern.fullmatch(path)
            if verb == method and m:
                try:
                    with self.store.lock:
                        return fn(*m.groups(), query=query, body=body)
                except StoreError as exc:
                    return _STATUS[exc.kind], {"error": [{"message": str(exc)}]}
        return 404, {"error": [{"message": f"no route {method} {path}"}]}

    # -- handlers ------------------------------------------------------------------------------
    def meta(self, **_: Any) -> tuple[int, Any]:
        return 200, {"hostname": "http://[::]:8080", "version": self.version, "modules": {},
                     "grpcMaxMessageSize": 104858000}

    def nodes(self, **_: Any) -> tuple[int, Any]:
        count = sum(len(s) for c in self.store.collections.values() for s in c.shards.values())
        return 200, {"nodes": [{"name": "emulator-0", "status": "HEALTHY", "version": self.version,
                                "gitHash": "emulator", "stats": {"shardCount": len(self.store.collections),
                                                                 "objectCount": count},
                                "batchStats": {"queueLength": 0, "ratePerSecond": 0}, "shards": None}]}

    def list_classes(self, **_: Any) -> tuple[int, Any]:
        return 200, {"classes": [copy.deepcopy(c.schema) for c in self.store.collections.values()]}

    def create_class(self, body: Any, **_: Any) -> tuple[int, Any]:
        return 200, self.store.create_class(body or {})

    def get_class(self, name: str, **_: Any) -> tuple[int, Any]:
        coll = self.store.collections.get(name)
        return (200, copy.deepcopy(coll.schema)) if coll else (404, None)

    def delete_class(self, name: str, **_: Any) -> tuple[int, Any]:
        self.store.collections.pop(name, None)
        return 200, None

    def add_property(self, name: str, body: Any, **_: Any) -> tuple[int, Any]:
        return 200, self.store.add_property(name, body or {})

    def shards(self, name: str, **_: Any) -> tuple[int, Any]:
        coll = self.store.get(name)
        return 200, [{"name": t or f"{name}_shard0", "status": "READY", "vectorQueueSize": 0}
                     for t in (coll.tenants if coll.multi_tenant else [""])]

    def get_tenants(self, name: str, **_: Any) -> tuple[int, Any]:
        coll = self.store.get(name)
        return 200, [{"name": t, "activityStatus": _TENANT_REST.get(s, s)}
                     for t in sorted(coll.tenants) if (s := coll.tenant_status(t) or "")]

    def add_tenants(self, name: str, body: Any, **_: Any) -> tuple[int, Any]:
        self.store.add_tenants(name, body or [])
        return 200, body

    def remove_tenants(self, name: str, body: Any, **_: Any) -> tuple[int, Any]:
        self.store.remove_tenants(name, body or [])
        return 200, None

    def get_tenant(self, name: str, tenant: str, **_: Any) -> tuple[int, Any]:
        status = self.store.get(name).tenant_status(tenant)
        return (200, {"name": tenant, "activityStatus": _TENANT_REST.get(status, status)}) if status else (404, None)

    def insert_object(self, body: Any, **_: Any) -> tuple[int, Any]:
        vectors = {"": _vec(body["vector"])} if body.get("vector") else {}
        vectors.update({k: _vec(v) for k, v in (body.get("vectors") or {}).items()})
        self.store.put_object(body.get("class", ""), body.get("tenant") or "", body["id"],
                              _floats(body.get("properties") or {}), vectors)
        return 200, body

    def _find(self, name: str, uid: str, query: dict[str, str]) -> Any:
        shard = self.store.get(name).shard(query.get("tenant", ""))
        return shard.get(canonical_uuid(uid))

    def get_object(self, name: str, uid: str, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        obj = self._find(name, uid, query)
        if obj is None:
            return 404, None
        out = {"class": name, "id": obj.uuid, "properties": obj.props,
               "creationTimeUnix": obj.created_ms, "lastUpdateTimeUnix": obj.updated_ms}
        if "vector" in query.get("include", ""):
            out["vectors"] = {n: list(struct.unpack(f"<{len(b) // 4}f", b))
                              for n, (t, b) in obj.vectors.items() if t == 1}
        return 200, out

    def head_object(self, name: str, uid: str, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        return (204 if self._find(name, uid, query) else 404), None

    def delete_object(self, name: str, uid: str, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        n = self.store.delete_ids(name, query.get("tenant", ""), [canonical_uuid(uid)])
        return (204 if n else 404), None


def handler_class(app: RestApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out together: no delayed-ACK stalls
        wbufsize = 1 << 16

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload = 400, {"error": [{"message": "invalid JSON body"}]}
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = app.handle(self.command, parts.path.rstrip("/"), query, headers, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("rest: " + fmt, *args)

    return Handler
