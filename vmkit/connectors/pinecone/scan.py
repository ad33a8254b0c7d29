"""Reading a whole Pinecone index: list ids and fetch them, several namespaces at once. (A
pod-based index cannot list: it is read from a file of ids, see pinecone_ids_file.)

Listing is what bounds a Pinecone read. A page holds at most 100 ids and needs the previous
page's token, so one listing gets one page per round trip however many threads wait. Listings
of disjoint id sets are independent, so several streams take turns, a batch a turn, and the
next ``list_streams`` (URI option, default 4) in turn are listed ahead of the reader at once; a
fetch starts as soon as every two pages arrive (``PAGES_PER_FETCH``). A stream is a namespace,
or, for a namespace holding at least ``split_above`` records (URI option, default 5,000, i.e.
50 pages in sequence), one id prefix: ids are ASCII without NUL, so the non-empty ones of a
prefix's one-character extensions (found with one ``limit=1`` listing each) cover it exactly
(see pinecone_split). All of a namespace's prefixes join the rotation when it starts, so they
finish together: had five waited for four slots, the fifth would be listed alone at the end,
a fifth of the namespace in sequence. The next namespace starts while fewer than
``list_streams`` streams are open. The rotation is fixed, so a scan is deterministic and a
cursor resumes it exactly.

Cursors are JSON. A listing scan: ``{"open": [[NS, PREFIX, TOKEN], ...], "after": NS}``: the
streams being read in the order their turns come (TOKEN null at a stream's start), and the last
namespace started in bytewise order; later namespaces are still to come, and every other stream
is finished. Older forms still resume: a ``"queue": [[NS, PREFIX], ...]`` of streams that had
not yet had a turn, ``[NS, TOKEN]`` entries (prefix ""), and ``{"ns": NS, "token": T}`` /
``{"ns": NS, "done": true}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from vmkit.connectors.pinecone.split import LIST_PAGE, FirstPage, PrefixSplit
from vmkit.connectors.pinecone.wire import list_page, namespace_missing
from vmkit.connectors.read_ahead import ReadAhead
from vmkit.core.errors import TerminalError, TransientError
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.pinecone.connector import PineconeConnector

log = logging.getLogger("vmkit.connectors.pinecone.connector")

# Ids a fetch asks for: two list pages. Fetch is limited to 100 requests a second per index
# and list to 200, so one page a fetch would cap a read at 10,000 records a second, half of
# what listing allows. Two pages wait for each other at most one round trip.
PAGES_PER_FETCH = 2
_Key = tuple[str, str, str, int]  # namespace, prefix, token ("" at the start), batch size
_Listed = tuple[list[str], "str | None", list["Future[RecordBatch]"]]  # ids, next token, fetches
_Stream = list[Any]  # [namespace, prefix, token or None]


def open_streams(state: dict[str, Any] | None) -> tuple[list[_Stream], str | None]:
    """The open streams (in turn order, with their tokens) and the last namespace started. An
    older cursor's streams still waiting for a turn join the rotation at its end."""
    if state is None:
        return [], None
    if "open" in state:
        streams = [list(s) if len(s) == 3 else [s[0], "", s[1]] for s in state["open"]]
        return streams + [[ns, prefix, None] for ns, prefix in state.get("queue", [])], state["after"]
    if state.get("done"):
        return [], state["ns"]
    return [[state["ns"], "", state["token"]]], state["ns"]


class ListScan:
    """The listing scan of one connector; owns the threads that list and fetch ahead."""

    def __init__(self, conn: PineconeConnector, streams: int, split_above: int) -> None:
        self._conn = conn
        self._streams = streams
        self._split_above = split_above
        self._lock = threading.Lock()
        self._listings: ReadAhead[_Key, _Listed] = ReadAhead(streams, "vmkit-pinecone-list")
        self._fetchers: ThreadPoolExecutor | None = None
        self._counts: dict[str, int] | None = None  # namespace -> records (see namespace_names)
        self._split = PrefixSplit(self.list_ids, streams)
        self._first_pages: dict[str, FirstPage] = {}  # namespaces whose split look listed page 1

    def scan(self, state: dict[str, Any] | None, limit: int) -> tuple[RecordBatch, str | None]:
        streams, after = open_streams(state)
        while True:
            after = self._top_up(streams, after)
            if not streams:
                return RecordBatch.empty(self._conn.dimension()), None
            self._list_window(streams, limit)
            self._first_pages.clear()  # a later start of the namespace lists afresh
            ns, prefix, token = streams.pop(0)
            ids, token, fetches = self._take(ns, prefix, token, limit)
            if token:  # its next turn comes after the others'
                streams.append([ns, prefix, token])
            self._list_window(streams, limit)  # its newcomer starts before this batch's fetches end
            self._forget_all_but(streams, limit)
            if ids:  # every id listed comes back: a record, or a source_unreadable rejection
                parts = [f.result() for f in fetches]
                batch = RecordBatch.concat(parts) if any(map(len, parts)) \
                    else RecordBatch.empty(self._conn.dimension())
                batch.namespace = ns
                batch.rejected = [r for p in parts for r in p.rejected]
                return batch, orjson.dumps({"open": streams, "after": after}).decode()
            # else nothing listed: next turn

    def _top_up(self, streams: list[_Stream], after: str | None) -> str | None:
        """Open the next namespace's streams (all its prefixes at once) while fewer than
        ``list_streams`` are open."""
        while len(streams) < self._streams:
            # Ask the index again only when nothing is open: one stats call per namespace
            # boundary at most, and never between a listed batch and its return.
            nxt = self._next_namespace(after, refresh=not streams)
            if nxt is None:
                break
            streams.extend([nxt, prefix, None] for prefix in self._prefixes(nxt))
            after = nxt
        return after

    def _prefixes(self, ns: str) -> list[str]:
        """The id prefixes ``ns`` is listed as: the whole namespace ("") unless it holds at
        least ``split_above`` records and more than one stream may be open; then where its
        ids part (see pinecone_split)."""
        if self._streams == 1:
            return [""]
        if self._counts is None or ns not in self._counts:  # one namespace named by the URI
            self._counts = self._conn.namespace_names()
        count = self._counts.get(ns, 0)
        if count < self._split_above:
            return [""]
        prefixes, first = self._split.prefixes(ns, count)
        if first is not None:
            self._first_pages[ns] = first
        return prefixes

    def _next_namespace(self, after: str | None, refresh: bool) -> str | None:
        if self._conn.namespace is not None:
            return self._conn.namespace if after is None else None

        def later() -> list[str]:
            return sorted((n for n in self._counts or {} if after is None or n.encode() > after.encode()),
                          key=str.encode)

        if self._counts is None or (refresh and not later()):
            # Before the scan ends, the index is asked again: a namespace the first answer
            # did not name yet (stats lag writes; see PineconeConnector.namespace_names)
            # is read too.
            self._counts = self._conn.namespace_names()
        rest = later()
        return rest[0] if rest else None

    def _fetch_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._fetchers is None:
                self._fetchers = ThreadPoolExecutor(2 * self._streams, thread_name_prefix="vmkit-pinecone-fetch")
            return self._fetchers

    def _list_window(self, streams: list[_Stream], limit: int) -> None:
        """List ahead the next ``list_streams`` streams in turn (those not already)."""
        for ns, prefix, token in streams[: self._streams]:
            self._list_ahead(ns, prefix, token, limit)

    def _list_ahead(self, ns: str, prefix: str, token: str | None, limit: int) -> None:
        key = (ns, prefix, token or "", limit)
        if key not in self._listings:
            # A namespace that was looked at for a split starts from the page seen then.
            first = self._first_pages.pop(ns, None) if token is None and prefix == "" else None
            start = first if first is not None and len(first[0]) <= limit else None
            self._listings.start(key, partial(self._list_submitting, ns, prefix, token, limit, start))

    def _take(self, ns: str, prefix: str, token: str | None, limit: int) -> _Listed:
        """The listing for this turn (a failed one raises here, as listing inline would)."""
        return self._listings.take((ns, prefix, token or "", limit),
                                   partial(self._list_submitting, ns, prefix, token, limit))

    def _forget_all_but(self, streams: list[_Stream], limit: int) -> None:
        """Drop listings ahead that no open stream will take (another cursor was given)."""
        self._listings.keep_only({(ns, prefix, token or "", limit) for ns, prefix, token in streams})

    def _list_submitting(self, ns: str, prefix: str, token: str | None, limit: int,
                         start: FirstPage | None = None) -> _Listed:
        """List a batch's ids (from ``start``, its first page already listed, if given),
        submitting a fetch for every ``PAGES_PER_FETCH`` pages as they arrive (and for the
        batch's last ones)."""
        fetchers = self._fetch_pool()
        futures: list[Future[RecordBatch]] = []
        held: list[str] = []

        def fetch_held() -> None:
            futures.append(fetchers.submit(self._conn.fetch_listed, list(held), ns))
            held.clear()

        def on_page(page: list[str]) -> None:
            held.extend(page)
            if len(held) >= PAGES_PER_FETCH * LIST_PAGE:
                fetch_held()

        ids, token = self.list_ids(ns, prefix, token, limit, on_page=on_page, start=start)
        if held:
            fetch_held()
        return ids, token, futures

    def list_ids(self, ns: str, prefix: str, token: str | None, limit: int,
                 on_page: Callable[[list[str]], None] | None = None,
                 start: FirstPage | None = None) -> tuple[list[str], str | None]:
        """Up to ``limit`` ids starting with ``prefix`` after ``token`` (or the first page and
        its token, ``start``), asking for exactly what is missing so that the returned token
        resumes right after the last id (never mid-page). A transient failure after some
        pages returns those (a shorter batch) instead of losing them."""
        index, ids = self._conn.data_plane(), list[str]()
        if start is not None:
            ids, token = list(start[0]), start[1]
            if on_page is not None and ids:
                on_page(list(ids))
            if not token:
                return ids, None
        while len(ids) < limit:
            self._conn.pace("list")
            try:
                with self._conn.errors("list"):
                    page = list_page(index, ns, prefix or None, min(LIST_PAGE, limit - len(ids)), token)
            except TransientError:
                if not ids:
                    raise
                log.debug("list interrupted after %d ids; returning those", len(ids))
                break
            except TerminalError as exc:
                if not namespace_missing(exc):
                    raise
                log.debug("namespace %r not found: listed as empty", ns)
                token = None  # 404 "Namespace not found": it holds no (more) ids
                break
            page_ids = [v.id for v in page.vectors]
            ids.extend(page_ids)
            if on_page is not None and page_ids:
                on_page(page_ids)
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                break
        return ids, token or None

    def close(self) -> None:
        """Stop the threads. Called outside the connector's lock: a listing ahead may be
        waiting for it (to build the SDK client) and must be let finish."""
        self._listings.close()  # first: listings may still submit fetches
        with self._lock:
            fetchers, self._fetchers = self._fetchers, None
        if fetchers is not None:
            fetchers.shutdown(wait=True, cancel_futures=True)


DEFAULT_NS = "__default__"  # how 2026-07 stats name the default namespace ("" on the wire)


def canonical_ns(ns: str) -> str:
    return "" if ns == DEFAULT_NS else ns
