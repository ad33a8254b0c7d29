"""Where a big Pinecone namespace's ids part: the id prefixes it is listed as, several at once.

Prefixes are refined from the namespace's smallest id, a level at a time, until there are
``list_streams`` of them or none can be refined. A prefix ``p`` whose smallest id is ``s``
splits into ``p + s[len(p)]`` and those of its extensions by a character above ``s[len(p)]``
that hold ids (lower ones cannot: ``s`` is the smallest). Ids are ASCII without NUL, so that is
one ``limit=1`` probe per character up to 127, which also returns each new prefix's smallest id;
the prefixes found cover the namespace exactly.

Probes run ``PROBES_AT_ONCE`` at a time, and a namespace spends at most two per list page it
would take in sequence: under the documented 200 list requests a second they take 10 ms a page,
well under the round trip each page costs in sequence. A level that would pass that is not
started, and no probe is made unless the first split fits in it for certain (see
``first_split_cost``). UUIDs split at the first level (79 probes); ids like ``doc-0012345`` in a
namespace of 10,000 would spend 469 probes before they part, and are listed in sequence.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vmkit.core.errors import TransientError
from vmkit.core.retry import call_with_retry

log = logging.getLogger("vmkit.connectors.pinecone.connector")

LIST_PAGE = 100  # ids per list page (SDK and service maximum)
PROBES_AT_ONCE = 32  # limit=1 listings that look for where a namespace's ids part
_PROBE_ATTEMPTS = 4
# (namespace, prefix, token, limit) -> (ids, next token): ListScan.list_ids
ListIds = Callable[[str, str, "str | None", int], "tuple[list[str], str | None]"]
FirstPage = tuple[list[str], "str | None"]  # a listing's first ids and the token after them


def first_split_cost(first_page: list[str]) -> int:
    """The most probes a descent from the smallest id can spend before a prefix splits in
    two, given the namespace's first (smallest) ids: they differ at the first position where
    they do not all agree, so the split comes at that level or before it (or the descent ends
    at the smallest id itself, which cannot be refined)."""
    smallest = first_page[0]
    depth = min(len(os.path.commonprefix(first_page)) + 1, len(smallest))
    return sum(max(0, 127 - ord(c)) for c in smallest[:depth])


class PrefixSplit:
    """Finds the prefixes of one connector's namespaces; keeps probe answers across retries."""

    def __init__(self, list_ids: ListIds, streams: int) -> None:
        self._list_ids = list_ids
        self._streams = streams
        self._probed: dict[tuple[str, str], str | None] = {}  # (ns, prefix) -> its smallest id

    def prefixes(self, ns: str, count: int) -> tuple[list[str], FirstPage | None]:
        """The prefixes ``ns`` (holding about ``count`` records) is listed as, bytewise; and
        when that is the whole namespace, the first page looked at (its ids and next token),
        which its listing can start from instead of asking again."""
        budget = count * 2 // LIST_PAGE
        first, token = call_with_retry(self._list_ids, ns, "", None, LIST_PAGE, attempts=_PROBE_ATTEMPTS)
        if len(first) < 2 or first_split_cost(first) > budget:
            return [""], (first, token)
        smallest = {"": first[0]}
        while len(smallest) < self._streams:
            probes = [p + chr(c) for p, s in smallest.items() if len(s) > len(p)
                      for c in range(ord(s[len(p)]) + 1, 128)]
            if not probes or len(probes) > budget:
                break
            budget -= len(probes)
            refined = {p + s[len(p)] if len(s) > len(p) else p: s for p, s in smallest.items()}
            refined.update(self._probe(ns, probes))
            smallest = refined
        log.debug("namespace %r: listing %d id prefixes at once", ns, len(smallest))
        self._probed = {}
        return sorted(smallest, key=str.encode), None

    def _probe(self, ns: str, prefixes: list[str]) -> dict[str, str]:
        """Each of ``prefixes`` that holds ids, with its smallest id. A probe is retried on its
        own a few times (a level is many requests, so some 429 or 5xx is likely); one that
        still fails fails the scan, and answers are kept until the namespace's prefixes are
        found, so the scan's retry asks only what is still unanswered."""
        todo = [p for p in prefixes if (ns, p) not in self._probed]
        failure: TransientError | None = None
        with ThreadPoolExecutor(PROBES_AT_ONCE, thread_name_prefix="vmkit-pinecone-probe") as pool:
            asked = [(p, pool.submit(call_with_retry, self._list_ids, ns, p, None, 1,
                                     attempts=_PROBE_ATTEMPTS)) for p in todo]
            for p, future in asked:
                try:
                    ids, _ = future.result()
                    self._probed[(ns, p)] = ids[0] if ids else None
                except TransientError as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure
        return {p: smallest for p in prefixes if (smallest := self._probed[(ns, p)]) is not None}
