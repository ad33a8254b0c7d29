"""Reading a whole Weaviate collection: each tenant in uuid order with the ``after`` cursor,
several tenants at once.

A multi-tenant collection may hold thousands of tenants, most of them small, and each page is a
round trip. So up to ``tenant_streams`` tenants (URI option, default 4) are open at once, each
with its next page read ahead in a thread, and batches are handed out in turn, in a fixed
rotation: a scan is deterministic and a cursor resumes it exactly. The tenant list is asked for
again only when every open tenant is finished, so a page costs one round trip, not two.

Cursors are JSON: ``{"open": [[TENANT, AFTER], ...], "queue": [TENANT, ...], "after": TENANT}``
(plus ``"woken": {TENANT: FORMER STATE}`` while tenants vmkit activated are being read, so a scan
resumed after a crash still puts them back: see weaviate_tenants):
the tenants being read in the order their turns come (AFTER, the last uuid read, null at a
tenant's start), tenants still waiting for a turn, and the last tenant started in bytewise
order; later tenants are still to come, and every other one is finished. A collection without
tenants is the one tenant "". The older form ``{"pos": {TENANT: uuid | true}}`` (each tenant's
position, true once finished, absent before it started) still resumes.

As for Pinecone namespaces, a tenant created during the scan is read if its name sorts after
the last one started; one that sorts before is not, and full verification finds its records
missing (``vmkit.sync`` catches such writes up from its journal).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.read_ahead import ReadAhead
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.weaviate.connector import WeaviateConnector

_Key = tuple[str, str, int]  # tenant, after ("" at its start), page size
_Page = tuple[RecordBatch, "str | None", int]  # batch, last uuid read, objects read


class TenantScan:
    """The scan of one connector; owns the threads that read ahead."""

    def __init__(self, conn: WeaviateConnector, streams: int) -> None:
        self._conn = conn
        self._streams = streams
        self._reads: ReadAhead[_Key, _Page] = ReadAhead(streams, "vmkit-weaviate-scan")
        self._tenants: list[str] | None = None  # bytewise; asked for again when all open ones end

    def scan(self, cursor: str | None, limit: int) -> tuple[RecordBatch, str | None]:
        streams, queue, after = self._state(cursor)
        while True:
            after = self._top_up(streams, queue, after)
            if not streams:
                return RecordBatch.empty(self._conn._dim or 0), None
            for tenant, pos in streams[: self._streams]:
                self._read_ahead(tenant, pos, limit)
            tenant, pos = streams.pop(0)
            batch, last, read = self._take(tenant, pos, limit)
            if read == limit:  # a short page is the tenant's last; a full one gets another turn
                streams.append([tenant, last])
                self._read_ahead(tenant, last, limit)
            else:  # read in full: a tenant vmkit activated goes back to its former state
                self._conn._activity.put_back(tenant)
            self._forget_all_but(streams, limit)
            if read:
                state: dict[str, Any] = {"open": streams, "queue": queue, "after": after}
                if self._conn._activity.woken:  # tenants=activate: put back even after a crash
                    state["woken"] = dict(sorted(self._conn._activity.woken.items()))
                return batch, orjson.dumps(state).decode()

    def _state(self, cursor: str | None) -> tuple[list[list[Any]], list[str], str | None]:
        if cursor is None:
            return [], [], None
        state = orjson.loads(cursor)
        self._conn._activity.adopt(state.get("woken") or {})
        if "pos" not in state:
            return [list(s) for s in state["open"]], list(state["queue"]), state["after"]
        pos: dict[str, Any] = state["pos"]  # the older form: every tenant's own position
        tenants = self._names(refresh=True)
        return ([[t, p] for t, p in sorted(pos.items(), key=lambda kv: kv[0].encode()) if p is not True],
                [t for t in tenants if t not in pos], tenants[-1] if tenants else None)

    def _top_up(self, streams: list[list[Any]], queue: list[str], after: str | None) -> str | None:
        """Open tenants until ``tenant_streams`` are open or none is left to start: the waiting
        ones first, then the next tenant after ``after``."""
        while len(streams) < self._streams:
            if queue:
                streams.append([queue.pop(0), None])
                continue
            later = self._later(after, refresh=False)
            if not later and not streams:  # about to finish: tenants added meanwhile are read too
                later = self._later(after, refresh=True)
            if not later:
                break
            streams.append([later[0], None])
            after = later[0]
        return after

    def _later(self, after: str | None, refresh: bool) -> list[str]:
        names = self._names(refresh)
        return [t for t in names if after is None or t.encode() > after.encode()]

    def _names(self, refresh: bool) -> list[str]:
        if self._tenants is None or refresh:
            facts = self._conn._schema()
            names = self._conn._tenant_names(facts["mt"])
            if self._conn._activity.skipping:
                names = self._conn._activity.countable(names)
            self._tenants = sorted(names, key=str.encode)
        return self._tenants

    def forget_tenants(self) -> None:
        self._tenants = None

    def _read_ahead(self, tenant: str, pos: str | None, limit: int) -> None:
        self._reads.start((tenant, pos or "", limit), partial(self._read, tenant, pos, limit))

    def _take(self, tenant: str, pos: str | None, limit: int) -> _Page:
        """This turn's page (a failed read ahead raises here, as reading inline would)."""
        return self._reads.take((tenant, pos or "", limit), partial(self._read, tenant, pos, limit))

    def _forget_all_but(self, streams: list[list[Any]], limit: int) -> None:
        self._reads.keep_only({(t, pos or "", limit) for t, pos in streams})

    def _read(self, tenant: str, pos: str | None, limit: int) -> _Page:
        conn = self._conn
        facts = conn._schema()
        conn._activity.wake(tenant)  # stays active (tenants=activate) until read in full
        objects = conn._fetch_objects(tenant, facts, "scan", limit=limit, after=pos)
        if not objects:  # an empty tenant, or one that ended on a full page
            return RecordBatch.empty(conn._dim or 0), pos, 0
        return conn._to_batch(objects, facts, tenant), str(objects[-1].uuid), len(objects)

    def close(self) -> None:
        self._reads.close()
