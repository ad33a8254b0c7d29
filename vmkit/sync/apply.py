"""Applying source journal events to the target, proving writes applied, and dead letters.

An event is applied once the source SHOWS its journaled content hash: the id is re-read and
its digest compared with the hashes of its journal events (the one being applied or a newer
one; "not found" matches a delete). A source that is eventually consistent (Pinecone shows a
write up to seconds late) is re-read with backoff until it does, for at most ``wait_s``; then
the apply fails loudly (``NotVisible``), having written and deleted nothing for those ids. A
stale "not found" is therefore never taken as a delete, nor a stale record as the last state.

Records the plan rejects get one dead-letter row each in ``rejections`` (``seq`` NULL marks a
sync's rows); the target keeps its last good version, and verification passes leave those ids
out until a later write of theirs is applied (which clears the row).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from vmkit.core.errors import StateError
from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import RecordBatch, Rejection
from vmkit.planning.transform import map_batch
from vmkit.state.store import StateStore
from vmkit.sync.sides import Key, Sides, group

log = logging.getLogger("vmkit.sync.engine")
_CHUNK = 500  # ids per SQL IN list


class NotVisible(StateError):
    """The source did not show the journaled content of some ids (``keys``) within the wait."""

    def __init__(self, message: str, keys: Iterable[Key] = ()) -> None:
        super().__init__(message)
        self.keys = set(keys)


# -- the journal, per id -----------------------------------------------------------------------
def states(store: StateStore, mid: str, keys: dict[Key, int]) -> dict[Key, set[str | None]]:
    """Per key, the content hashes it may show to count as applied: those of its source events
    from ``keys[key]`` on (None for a delete). A key without such events gets an empty set."""
    out: dict[Key, set[str | None]] = {k: set() for k in keys}
    for ns, ids in group(keys).items():
        for start in range(0, len(ids), _CHUNK):
            part = [str(rid) for rid in ids[start:start + _CHUNK]]
            rows = store.query(
                "SELECT seq, record_id, id_is_int, op, content_hash FROM sync_journal WHERE migration_id=?"
                f" AND side='source' AND namespace=? AND record_id IN ({','.join('?' * len(part))})",
                mid, ns, *part)
            for seq, rid, is_int, op, digest in rows:
                key = (ns, int(rid) if is_int else rid)
                if key in out and seq >= keys[key]:
                    out[key].add(None if op == "delete" else digest)
    return out


def last_seqs(store: StateStore, mid: str, keys: Iterable[Key]) -> dict[Key, int]:
    """The seq of each key's newest source event (0 when it has none)."""
    out: dict[Key, int] = {}
    for ns, ids in group(keys).items():
        for start in range(0, len(ids), _CHUNK):
            part = [str(rid) for rid in ids[start:start + _CHUNK]]
            rows = store.query(
                "SELECT record_id, id_is_int, max(seq) FROM sync_journal WHERE migration_id=? AND side='source'"
                f" AND namespace=? AND record_id IN ({','.join('?' * len(part))}) GROUP BY record_id, id_is_int",
                mid, ns, *part)
            out.update({(ns, int(rid) if is_int else rid): seq for rid, is_int, seq in rows})
    return {k: out.get(k, 0) for k in dict.fromkeys(keys)}


def prune(store: StateStore, mid: str, side: str, upto: int) -> int:
    """Delete events up to ``upto`` (applied and verified); the newest row stays (the head)."""
    with store.transaction() as db:
        cur = db.execute("DELETE FROM sync_journal WHERE migration_id=? AND side=? AND seq<=? AND seq<"
                         "(SELECT max(seq) FROM sync_journal WHERE migration_id=? AND side=?)",
                         (mid, side, upto, mid, side))
        return int(cur.rowcount)


# -- applying ----------------------------------------------------------------------------------
def _shown(s: Sides, keys: list[Key]) -> dict[Key, tuple[set[str | None], RecordBatch | None, int]]:
    """What the source shows now per key: ({hex digest} or {None} if absent, its batch, row).
    A cosine-normalizing source may hand back its own unit rows: hashed as stored, and as
    normalized again, either may match what the application wrote."""
    out: dict[Key, tuple[set[str | None], RecordBatch | None, int]] = {k: ({None}, None, -1) for k in keys}
    opts = s.source_opts()
    for ns, ids in group(keys).items():
        found = s.retry(s.source.fetch, ids, ns)
        found.namespace = ns
        for i, (_, digest) in enumerate(batch_digests(found, **opts)):
            out[(ns, found.ids[i])] = ({digest.hex()}, found, i)
        if opts["normalize"]:
            for i, (_, digest) in enumerate(batch_digests(found, **opts, keep_unit_rows=True)):
                out[(ns, found.ids[i])][0].add(digest.hex())
    return out


def apply_source(s: Sides, store: StateStore, mid: str, keys: dict[Key, int], wait_s: float,
                 tick: Callable[[], None] = lambda: None) -> int:
    """Apply source keys on the target once the source shows one of their journaled states
    (``keys``: key -> seq of the event applied). Returns the ids applied; raises NotVisible."""
    todo, n, delay = dict(keys), 0, 0.05
    deadline = time.monotonic() + wait_s
    while todo:
        want, now = states(store, mid, todo), _shown(s, list(todo))
        done = [k for k in todo if not want[k] or now[k][0] & want[k]]  # no event: re-read wins
        rows: dict[int, tuple[RecordBatch, list[int]]] = {}
        for k in done:
            _, batch, i = now[k]
            if batch is not None:
                rows.setdefault(id(batch), (batch, []))[1].append(i)
        for batch, idx in rows.values():
            n += s.write_rows(batch.take(idx))
        gone = [tk for k in done if now[k][1] is None and (tk := s.target_key(k)) is not None]
        n += s.delete(s.target, gone)
        for k in done:
            del todo[k]
        if not todo:
            break
        if time.monotonic() >= deadline:
            sample = ", ".join(f"{rid!r}" + (f" (namespace {ns!r})" if ns else "") for ns, rid in list(todo)[:5])
            raise NotVisible(
                f"migration '{mid}': after {wait_s:.1f} s the source still does not show the journaled "
                f"content of {len(todo)} ids ({sample}); nothing was written or deleted for them. The source "
                "is slower than that to show writes (raise visibility_s), or a writer died between its "
                "source write and its journal append (write those ids again through the JournalingWriter)",
                todo)
        tick()
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)
    return n


def differing(s: Sides, keys: Iterable[Key], skip: set[Key]) -> list[Key]:
    """Source keys whose target record is not the source's mapped through the plan (missing
    or extra on one side included); ``skip`` (and plan-rejected records) left out."""
    out: list[Key] = []
    for ns, ids in group(k for k in keys if k not in skip).items():
        found = s.retry(s.source.fetch, ids, ns)
        found.namespace = ns
        mapped = map_batch(found, s.plan)
        rejected = {r.record_id for r in mapped.rejected}
        want = {tk: (d, i) for i, (tk, d) in enumerate(batch_digests(mapped.batch, **s.opts))}
        where = {tk: (ns, rid) for rid in ids if rid not in rejected and (tk := s.target_key((ns, rid)))}
        have: dict[Key, bytes] = {}
        for tns, tids in group(where).items():
            got = s.retry(s.target.fetch, tids, tns)
            got.namespace = tns
            have.update(batch_digests(got, **s.opts, keep_unit_rows=True))
        suspects = {}
        for tk, sk in where.items():
            if (tk in want) != (tk in have):
                out.append(sk)
            elif tk in want and want[tk][0] != have[tk]:
                suspects[tk] = (mapped.batch, want[tk][1])
        out.extend(where[tk] for tk in s.really_differ(suspects))
    return out


def settle(s: Sides, store: StateStore, mid: str, side: str, diffs: dict[Key, Key | None], skip: set[Key],
           wait_s: float, tick: Callable[[], None] = lambda: None) -> dict[Key, Key | None]:
    """Of a pass's differences (target key -> source key), those that remain to repair. A
    difference on an id this sync applied (events still in ``side``'s journal) may only be a
    store showing the write late: it is re-checked until both sides agree, for at most
    ``wait_s``. Ids without events (a change no journal explains) are returned at once."""
    rows = store.query("SELECT DISTINCT namespace, record_id, id_is_int FROM sync_journal"
                       " WHERE migration_id=? AND side=?", mid, side)
    evented = {tk: k for ns, rid, is_int in rows
               if (tk := s.target_key(k := (ns, int(rid) if is_int else rid))) is not None and tk in diffs}
    late, delay = dict(evented), 0.05
    deadline = time.monotonic() + wait_s
    while late:
        bad = set(differing(s, late.values(), skip))
        late = {tk: sk for tk, sk in late.items() if sk in bad}
        if not late or time.monotonic() >= deadline:
            break
        tick()
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)
    return {tk: sk for tk, sk in diffs.items() if tk not in evented or tk in late}


# -- dead letters ------------------------------------------------------------------------------
def dead_letters(store: StateStore, mid: str) -> set[Key]:
    """(namespace, source id) of the records a sync's plan rejected and still holds back."""
    rows = store.query("SELECT namespace, record_id, id_is_int FROM rejections WHERE migration_id=?"
                       " AND seq IS NULL", mid)
    return {(ns, int(rid) if is_int else rid) for ns, rid, is_int in rows}


def dead_letter_hook(store: StateStore, mid: str) -> Callable[[list[Rejection], list[Key]], None]:
    """For ``Sides.dead_letter``: one row per rejected id (replaced, never duplicated); a row
    is cleared when a later version of its id is written."""
    held = [bool(dead_letters(store, mid))]

    def hook(rejected: list[Rejection], written: list[Key]) -> None:
        if not rejected and not held[0]:
            return
        with store.transaction() as db:
            for ns, ids in group([*written, *((r.namespace, r.record_id) for r in rejected)]).items():
                for start in range(0, len(ids), _CHUNK):
                    part = [str(rid) for rid in ids[start:start + _CHUNK]]
                    db.execute("DELETE FROM rejections WHERE migration_id=? AND seq IS NULL AND namespace=?"
                               f" AND record_id IN ({','.join('?' * len(part))})", (mid, ns, *part))
            db.executemany("INSERT INTO rejections VALUES (?,?,?,?,?,?,NULL)",
                           [(mid, r.namespace, str(r.record_id), int(isinstance(r.record_id, int)), r.reason,
                             r.field) for r in rejected])
            held[0] = bool(db.execute("SELECT 1 FROM rejections WHERE migration_id=? AND seq IS NULL LIMIT 1",
                                      (mid,)).fetchone())
        for r in rejected:
            log.warning("sync %s: %s (dead letter; the target keeps its last good version)", mid, r)

    return hook


def attach(s: Sides, store: StateStore, mid: str) -> Sides:
    s.dead_letter = dead_letter_hook(store, mid)
    return s
