"""Reading a Pinecone index from a file of ids (the URI's ``ids_file``): the way to read a
pod-based index, which cannot list its ids. One id a line, or ``namespace<TAB>id``; a batch
holds one namespace. Cursor: ``{"offset": BYTES, "line": N}``, where the next line starts.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from vmkit.connectors.base import reservoir
from vmkit.connectors.pinecone.scan import canonical_ns
from vmkit.core.errors import ConfigError
from vmkit.core.records import RecordBatch

if TYPE_CHECKING:
    from vmkit.connectors.pinecone.connector import PineconeConnector

log = logging.getLogger("vmkit.connectors.pinecone.connector")


def scan_ids_file(conn: PineconeConnector, state: dict[str, Any] | None, limit: int
                  ) -> tuple[RecordBatch, str | None]:
    """The next batch of the ids file named by the URI (one namespace per batch)."""
    if state is not None and "offset" not in state:
        raise ConfigError("this cursor belongs to a list scan; drop ids_file to resume it")
    offset, line = (0, 0) if state is None else (state["offset"], state["line"])
    with _open_ids_file(str(conn.ids_file)) as f:
        f.seek(offset)
        while True:
            ns, ids, more = None, [], False
            while True:
                start, raw = f.tell(), f.readline()
                if not raw:
                    break
                entry = _ids_file_entry(conn, raw, line)
                if entry is None:
                    line += 1
                    continue
                lns, rid = entry
                if ns is not None and (lns != ns or len(ids) == limit):
                    f.seek(start)  # batches hold one namespace: this line starts the next
                    more = True
                    break
                line += 1
                ns = lns
                ids.append(rid)
            cursor = orjson.dumps({"offset": f.tell(), "line": line}).decode()
            if ns is not None:
                # an id the file names and the index does not return is a source_unreadable
                # rejection (after re-fetches), never skipped
                batch = conn.fetch_listed(ids, ns)
                if batch.rejected:
                    log.warning("%d ids from ids_file (before line %d) are not in index '%s'",
                                len(batch.rejected), line, conn.index_name)
                return batch, cursor if more else None
            if not more:
                return RecordBatch.empty(conn.dimension()), None


def sample_ids_file(conn: PineconeConnector, n: int, seed: int) -> list[RecordBatch]:
    """About ``n`` of the records the ids file names, spread over it (a reservoir of its
    lines), fetched by id: the file is the migration's keyspace, not the whole index."""
    with _open_ids_file(str(conn.ids_file)) as f:
        entries = (_ids_file_entry(conn, raw, line) for line, raw in enumerate(f))
        keep = reservoir((e for e in entries if e is not None), n, random.Random(seed))
    by_ns: dict[str, list[str]] = {}
    for ns, rid in keep:
        by_ns.setdefault(ns, []).append(rid)
    return [conn.fetch(ids, ns) for ns, ids in sorted(by_ns.items(), key=lambda kv: kv[0].encode())]


def _ids_file_entry(conn: PineconeConnector, raw: bytes, line: int) -> tuple[str, str] | None:
    """(namespace, id) of a line of the ids file (0-based ``line``), or None for a blank line
    or another namespace than the URI's."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"ids_file line {line + 1} is not UTF-8") from None
    ns, tab, rid = text.partition("\t")
    ns, rid = (canonical_ns(ns), rid) if tab else (conn.namespace or "", text)
    if not rid or (conn.namespace is not None and ns != conn.namespace):
        return None
    return ns, rid


def _open_ids_file(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read ids_file: {exc.strerror}") from None
