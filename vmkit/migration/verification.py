"""Full verification, before a migration is called completed: every id on both sides and a
canonical content hash per record (vmkit.core.fingerprint), with an exact re-check of any hash
mismatch (cosine-normalizing targets are compared after normalizing, to 1e-6).

Counts reconcile: per source namespace (collection, tenant), the records verification's own
scan read (mapped + rejected, records the source listed but could not hand over included)
must equal the source's own count (``Connector.namespace_counts``), taken before and after
the scan. An eventually consistent source is re-counted until two readings agree (bounded).
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from vmkit.connectors.base import Connector
from vmkit.core.errors import TerminalError
from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import SOURCE_UNREADABLE, RecordBatch, RecordId, SparseVector
from vmkit.core.retry import call_with_retry
from vmkit.migration.compare import Retry, compare_opts
from vmkit.migration.digest_table import (
    MATCHED,
    DigestTable,
    chunked,
    digest_heads,
    extra_keys,
    key_hashes,
)
from vmkit.migration.recheck import recheck, sort_key, unchecked
from vmkit.migration.reverse import ReverseCheck, reverse_check
from vmkit.planning.plan import Plan
from vmkit.planning.transform import MappedBatch, map_batch

log = logging.getLogger("vmkit.migration.verification")

Key = tuple[str, RecordId]
# (source namespace, the source's own count after the scan, records the scan read)
CountMismatch = tuple[str, int, int]
COUNT_READS = 5  # readings of an eventually consistent source's counts before giving up on stable
# What a record should be, kept for the exact re-check: vector, metadata, sparse, named vectors.
Suspect = tuple[np.ndarray, dict[str, Any], SparseVector | None, dict[str, np.ndarray]]
Tick = Callable[[str, int], None]  # progress: (what is being read, records read so far)


@dataclass
class Verification:
    """Outcome of comparing every record of source and target."""

    source_records: int = 0
    target_records: int = 0
    matched: int = 0
    rejected: int = 0
    missing: list[Key] = field(default_factory=list)
    extra: list[Key] = field(default_factory=list)
    mismatched: list[tuple[Key, str]] = field(default_factory=list)
    seconds: float = 0.0
    # Per source namespace: {"read": records the scan read, "source": the source's count after
    # the scan, "source_before": before it}.
    namespace_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    count_mismatches: list[CountMismatch] = field(default_factory=list)
    # (source namespace, source id) the source listed but could not hand over: counted as read
    # and rejected; the runner keeps the migration from ``completed`` unless they are accepted.
    unreadable: list[Key] = field(default_factory=list)
    # With ``verify(reverse=True)``: every target record mapped back to source terms and
    # compared with the raw source record (vmkit.migration.reverse); None when not asked for.
    reverse: ReverseCheck | None = None

    @property
    def reverse_mismatched(self) -> list[tuple[Key, str]]:
        """(source namespace, source id) and why, of target records that do not map back."""
        return [] if self.reverse is None else [(key, why) for _, key, why in self.reverse.failures]

    @property
    def passed(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.count_mismatches
                    or self.reverse_mismatched)

    def count_problem(self, ns: str) -> str:
        """Why namespace ``ns`` does not reconcile ("" when it does)."""
        c = self.namespace_counts.get(ns)
        if c is None or c["read"] == c["source"] == c["source_before"]:
            return ""
        kind = "shortfall" if c["read"] < c["source"] else "excess" if c["read"] > c["source"] else "count"
        changed = (f"; the source's count changed during the scan (before {c['source_before']})"
                   if c["source_before"] != c["source"] else "")
        return (f"namespace {ns!r}: {kind}, source count {c['source']}, read {c['read']}{changed}")

    def to_dict(self, limit: int = 1000) -> dict[str, Any]:
        return {
            "passed": self.passed, "source_records": self.source_records,
            "target_records": self.target_records, "matched": self.matched,
            "rejected": self.rejected, "missing_count": len(self.missing),
            "extra_count": len(self.extra), "mismatched_count": len(self.mismatched),
            "missing": [list(k) for k in self.missing[:limit]],
            "extra": [list(k) for k in self.extra[:limit]],
            "mismatched": [[list(k), why] for k, why in self.mismatched[:limit]],
            "seconds": round(self.seconds, 3),
            "namespace_counts": {ns: dict(c) for ns, c in self.namespace_counts.items()},
            "count_mismatches_count": len(self.count_mismatches),
            "count_mismatches": [list(m) for m in self.count_mismatches[:limit]],
            "unreadable_count": len(self.unreadable),
            "unreadable": [list(k) for k in self.unreadable[:limit]],
            **({} if self.reverse is None else {
                "reverse_checked": self.reverse.checked,
                "reverse_mismatched_count": len(self.reverse.failures),
                "reverse_mismatched": [[list(k), why] for k, why in self.reverse_mismatched[:limit]],
                "reverse_notes": list(self.reverse.notes)}),
        }

    def lines(self, limit: int | None = 20) -> Iterable[str]:
        """Summary, then ids by problem (``limit`` per kind; None for all)."""
        yield (f"verification {'PASSED' if self.passed else 'FAILED'}: {self.matched} matched, "
               f"{self.rejected} rejected by plan, {len(self.missing)} missing, {len(self.extra)} extra, "
               f"{len(self.mismatched)} mismatched (source {self.source_records}, target {self.target_records})"
               + (f", {len(self.count_mismatches)} namespace counts differ" if self.count_mismatches else "")
               + (f", {len(self.unreadable)} unreadable at the source" if self.unreadable else "")
               + ("" if self.reverse is None else
                  f"; reverse check: {self.reverse.checked} mapped back, {len(self.reverse.failures)} differ"))
        groups = (
            ("count", [self.count_problem(ns) for ns, _, _ in self.count_mismatches]),
            ("unreadable", [_fmt(*k) for k in self.unreadable]),
            ("missing", [_fmt(*k) for k in self.missing]),
            ("extra", [_fmt(*k) for k in self.extra]),
            ("mismatched", [f"{_fmt(*k)}: {why}" for k, why in self.mismatched]),
            ("reverse", [f"{_fmt(*k)}: {why}" for k, why in self.reverse_mismatched]),
            ("note", [] if self.reverse is None else [f"reverse check: {n}" for n in self.reverse.notes]),
        )
        for label, items in groups:
            for item in items[:limit]:
                yield f"  {label:<10} {item}"
            if limit is not None and len(items) > limit:
                yield f"  ... and {len(items) - limit} more {label}"

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(f"<li><code>{html.escape(line.strip())}</code></li>" for line in list(self.lines())[1:51])
        head = html.escape(next(iter(self.lines())))
        counts = "".join(
            f"<tr><td><code>{html.escape(repr(ns))}</code></td><td>{c['read']}</td><td>{c['source']}</td>"
            f"<td>{'' if not self.count_problem(ns) else '&#10007;'}</td></tr>"
            for ns, c in list(self.namespace_counts.items())[:50])
        table = (f"<table><tr><th>namespace</th><th>read</th><th>source count</th><th></th></tr>{counts}</table>"
                 if counts else "")
        return f"<div><b style='color:{color}'>{head}</b><ul>{rows}</ul>{table}</div>"


def _fmt(ns: str, rid: RecordId) -> str:
    return f"{rid!r}" + (f" (namespace {ns!r})" if ns else "")


def verify(
    source: Connector, target: Connector, plan: Plan, *, scan_size: int = 1000,
    freshness_s: float = 0.0, dead_letter: set[Key] | None = None,
    retry: Retry = call_with_retry, count_settle_s: float = 0.5, reverse: bool = False,
    max_suspects: int = 10_000, progress: Tick | None = None,
) -> Verification:
    """Every id and every content hash, both sides, and the records read per source namespace
    against the source's own count. Memory: 17 bytes a target record (33 while the digest
    table is built, vmkit.migration.digest_table) and the records of up to ``max_suspects`` hash
    mismatches, kept for the exact re-check; past that, only their keys.

    ``dead_letter`` holds (source namespace, source id) of records the target refused during
    the run: they are expected to be absent and counted as rejected. ``count_settle_s`` is the
    first wait between two count readings of an eventually consistent source.

    ``reverse``: also fetch every record the source maps to from the target, map it back to
    source terms and compare it with the raw source record (vmkit.migration.reverse), which a bug in the
    forward mapping cannot fool. It reads the target a second time, by id.

    ``progress(what, records)`` is called after every page read ("target", "source", "target,
    second pass"), so a long verification shows that it moves.
    """
    dead_letter = dead_letter or set()
    started = time.monotonic()
    opts = compare_opts(plan)
    result = Verification()
    counts_before = source_counts(source, retry, count_settle_s)
    if reverse:
        result.reverse = ReverseCheck()
    read: dict[str, int] = {}
    # Under cosine on a normalizing target a target may hand back what it stored (unit rows)
    # or, like the embedded Qdrant engine after a reopen, the raw vectors it was given: the
    # raw ones are normalized as the source side is, so equal records hash alike.
    target_opts = {**opts, "keep_unit_rows": True}
    table = _target_table(target, target_opts, scan_size, retry, progress)
    result.target_records = len(table)
    log.info("verification: %d target records in a %.1f MB digest table", len(table), table.nbytes / 1e6)

    suspects: dict[Key, Suspect] = {}
    statuses: dict[Key, int] = {}
    over: list[tuple[Key, int]] = []  # suspects past ``max_suspects``: key and match status only
    matched = 0
    for batch in _scan_all(source, scan_size, retry, progress, "source"):
        mapped = map_source_batch(batch, plan, result, read)
        out = mapped.batch
        if result.reverse is not None and len(out) and not _reverse_batch(
                batch, out, target, plan, scan_size, result.reverse, retry):
            result.reverse = None  # the target keeps no records to map back (said in the log)
        pairs = list(batch_digests(out, **opts))
        rows = np.arange(len(pairs))
        if dead_letter:
            live = [(mapped.source_namespace, mapped.source_ids[i]) not in dead_letter for i in range(len(pairs))]
            result.rejected += live.count(False)
            rows = rows[np.asarray(live, bool)]
        keys = [pairs[i][0] for i in rows]
        status = table.match(key_hashes(keys), digest_heads([pairs[i][1] for i in rows]))
        matched += int((status == MATCHED).sum())
        for k in np.flatnonzero(status != MATCHED):
            i = int(rows[k])
            if len(suspects) >= max_suspects:
                over.append((keys[k], int(status[k])))
                continue
            sparse = None if out.sparse is None else out.sparse[i]
            named = {n: v[i].copy() for n, v in out.dense_vectors().items()} if out.named else {}
            suspects[keys[k]] = (out.vectors[i].copy(), out.metadata[i], sparse, named)
            statuses[keys[k]] = int(status[k])
    result.matched = matched
    unseen = table.unseen()
    del table
    if len(unseen):  # a second pass over the target names them
        result.extra = sorted(_extra_keys(target, target_opts, scan_size, retry, unseen, progress), key=sort_key)
    _reconcile(result, counts_before, source_counts(source, retry, count_settle_s), read)
    recheck(suspects, target, opts, freshness_s, result, retry, statuses)
    if over:
        log.warning("verification: %d suspects past the first %d not re-checked exactly", len(over), max_suspects)
        unchecked(over, f"over {max_suspects} suspects", result)
    result.seconds = time.monotonic() - started
    log.info("%s", next(iter(result.lines())))
    return result


def map_source_batch(raw: RecordBatch, plan: Plan, result: Verification, read: dict[str, int]) -> MappedBatch:
    """One source batch mapped as the copy mapped it, accounted for: records read (in all and
    per namespace), those the plan rejects, those the source could not hand over."""
    mapped = map_batch(raw, plan)
    result.source_records += mapped.read
    read[raw.namespace] = read.get(raw.namespace, 0) + mapped.read
    result.rejected += len(mapped.rejected)
    result.unreadable += [(raw.namespace, r.record_id) for r in raw.rejected if r.field == SOURCE_UNREADABLE]
    return mapped


def _reverse_batch(raw: RecordBatch, out: RecordBatch, target: Connector, plan: Plan, size: int,
                   check: ReverseCheck, retry: Retry) -> bool:
    """The target records ``out`` names, mapped back and compared with the raw batch. False
    when the target cannot hand records back at all (a fingerprint sink): nothing to check."""
    for start in range(0, len(out), size):
        try:
            got = retry(target.fetch, out.ids[start : start + size], out.namespace)
        except TerminalError as exc:
            if check.checked:
                raise
            log.warning("reverse check not possible: %s cannot return records (%s)", target.uri, exc)
            return False
        check.merge(reverse_check(got, raw, plan))
    return True


def source_counts(source: Connector, retry: Retry = call_with_retry, settle_s: float = 0.5) -> dict[str, int]:
    """The source's own count per namespace. An eventually consistent source is read again
    until two readings agree, at most ``COUNT_READS`` times, the wait doubling from
    ``settle_s``; the log says how it went."""
    counts: dict[str, int] = retry(source.namespace_counts)
    if not source.capabilities.eventually_consistent:
        return counts
    delay = settle_s
    for reading in range(2, COUNT_READS + 1):
        time.sleep(delay)
        again: dict[str, int] = retry(source.namespace_counts)
        if again == counts:
            log.info("source counts of %s stable after %d readings (%d records in %d namespaces)",
                     source.uri, reading, sum(again.values()), len(again))
            return again
        counts, delay = again, delay * 2
    log.warning("source counts of %s still changing after %d readings; the last one is used",
                source.uri, COUNT_READS)
    return counts


def _reconcile(result: Verification, before: dict[str, int], after: dict[str, int], read: dict[str, int]) -> None:
    """Records read per namespace against the source's counts before and after the scan."""
    for ns in sorted(set(before) | set(after) | set(read), key=str.encode):
        c = {"read": read.get(ns, 0), "source": after.get(ns, 0), "source_before": before.get(ns, 0)}
        result.namespace_counts[ns] = c
        if not c["read"] == c["source"] == c["source_before"]:
            result.count_mismatches.append((ns, c["source"], c["read"]))
            log.error("counts do not reconcile: %s", result.count_problem(ns))


def _target_table(target: Connector, opts: dict[str, Any], size: int, retry: Retry,
                  tick: Tick | None = None) -> DigestTable:
    """What the target holds, hashed as the source side is (see ``validate.compare_opts``)."""
    if type(target).digests is not Connector.digests:  # the target keeps digests itself
        return retry(lambda: DigestTable.from_digests(target.digests(**opts)))  # type: ignore[no-any-return]
    return DigestTable.from_digests(d for batch in _scan_all(target, size, retry, tick, "target")
                                    for d in batch_digests(batch, **opts))


def _extra_keys(target: Connector, opts: dict[str, Any], size: int, retry: Retry, unseen: np.ndarray,
                tick: Tick | None = None) -> list[Key]:
    """The target keys whose hash no source record claimed: a second pass over the target."""
    if type(target).digests is not Connector.digests:
        return retry(lambda: extra_keys(unseen, chunked(target.digests(**opts))))  # type: ignore[no-any-return]
    return extra_keys(unseen, ([k for k, _ in batch_digests(b, **opts)]
                               for b in _scan_all(target, size, retry, tick, "target, second pass")))


def _scan_all(conn: Connector, size: int, retry: Retry, tick: Tick | None = None,
              what: str = "") -> Iterable[RecordBatch]:
    cursor: str | None = None
    seen = 0
    while True:
        batch, cursor = retry(conn.scan, cursor, size)
        seen += len(batch)
        if tick is not None:
            tick(what, seen)
        if len(batch) or batch.rejected:  # records the source could not represent count as read
            yield batch
        if cursor is None:
            return
