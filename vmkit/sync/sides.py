"""Both sides of a sync: applying changes by re-reading them, and proof that the sides agree.

A change is applied by RE-READING the id on the side that leads and writing it to the other:
idempotent, last-state-wins (journal events are applied by ``sync_apply``, which waits until
the source shows the journaled content). A record the plan rejects is never removed from the
target: it gets a dead-letter row (``dead_letter``) and the target keeps its last good version.

Fingerprints: each target key falls in one of ``BUCKETS`` buckets by a stable hash of its
string form; a bucket's fingerprint is (count, sum of the 64-bit heads of the canonical digests
mod 2**64), the source mapped through the plan as verify does, the target from
``target.digests()``. Differing buckets are drilled into by a second scan (per-key digests for
those buckets only); digest mismatches are re-checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import xxhash

from vmkit.connectors.base import Connector
from vmkit.connectors.batching import split_batch
from vmkit.core.fingerprint import batch_digests, canonical_metadata
from vmkit.core.ids import BadId, to_target_id
from vmkit.core.records import RecordBatch, RecordId, Rejection
from vmkit.migration.compare import compare_opts, same_vectors
from vmkit.planning.plan import Plan
from vmkit.planning.transform import map_batch

Key = tuple[str, RecordId]  # (namespace, id)
BUCKETS = 256
_MASK = 2**64 - 1


def group(keys: Iterable[Key]) -> dict[str, list[RecordId]]:
    out: dict[str, list[RecordId]] = {}
    for ns, rid in dict.fromkeys(keys):
        out.setdefault(ns, []).append(rid)
    return out


def bucket_of(key: Key) -> int:
    ns, rid = key
    return xxhash.xxh64_intdigest(f"{ns}\x1f{'i' if isinstance(rid, int) else 's'}:{rid}".encode()) % BUCKETS


def reverse_plan(source: Connector, target: Connector, forward: Plan) -> Plan:
    """Target records back to the source's shape: map_batch restores the original ids from
    ``_vmkit_source_id``/``_vmkit_id_kind``; renames are inverted (dropped fields stay lost)."""
    from vmkit.planning.planner import plan as make_plan

    ns_policy = "keep" if source.capabilities.namespaces else "drop"
    rev = make_plan(target, source, batch_size=forward.batch_size, sample=0, namespace_policy=ns_policy)
    rev.renames = {new: old for old, new in forward.renames.items()}
    return rev


def open_sides(store: Any, mid: str) -> "Sides":
    """Connectors, plan and retry policy of a stored migration (close with ``close()``)."""
    from vmkit.connectors import connect
    from vmkit.core.options import MigrationOptions
    from vmkit.core.retry import call_with_retry

    rec = store.get(mid)
    opts = MigrationOptions.from_dict(rec.options)

    def retry(fn: Callable[..., Any], *args: Any) -> Any:  # writes nothing to the state store
        return call_with_retry(fn, *args, attempts=opts.retry_attempts,
                               initial_s=opts.retry_initial_s, cap_s=opts.retry_cap_s)

    return Sides(connect(rec.source_uri), connect(rec.target_uri), Plan.from_json(rec.plan_json), retry)


class Sides:
    """Source and target of one migration, the plan(s) between them, and retried calls."""

    def __init__(self, source: Connector, target: Connector, plan: Plan,
                 retry: Callable[..., Any], reverse: Plan | None = None) -> None:
        self.source, self.target, self.plan, self.retry = source, target, plan, retry
        self.reverse = reverse
        self.opts = compare_opts(plan)
        # plan rejections (dead letters) and the source keys written since: set by the sync
        self.dead_letter: Callable[[list[Rejection], list[Key]], None] = lambda rejected, written: None
        self._source_opts: dict[str, Any] | None = None

    def source_opts(self) -> dict[str, Any]:
        """How a record re-read from the source hashes like the one the application wrote."""
        if self._source_opts is None:
            caps, info = self.source.capabilities, self.retry(self.source.describe)
            cosine = info is not None and info.metric == "cosine"
            self._source_opts = {"normalize": caps.normalizes_cosine and cosine,
                                 "numbers_as_float": not caps.metadata_big_ints}
        return self._source_opts

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def target_key(self, key: Key) -> Key | None:
        """Where a source key lives on the target (None: no target id exists for it)."""
        ns, rid = key
        try:
            tid, _ = to_target_id(rid, self.plan.capabilities.id_kinds,
                                  ns if self.plan.namespace_policy == "field" else "", self.plan.uint_ids)
        except BadId:
            return None
        return (ns if self.plan.namespace_policy == "keep" else "", tid)

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, conn: Connector, batch: RecordBatch) -> None:
        for part in split_batch(batch, conn.capabilities) if len(batch) else ():
            self.retry(conn.upsert, part)

    def delete(self, conn: Connector, keys: Iterable[Key]) -> int:
        n = 0
        for ns, ids in group(keys).items():
            self.retry(conn.delete, ids, ns)
            n += len(ids)
        return n

    def write_rows(self, batch: RecordBatch) -> int:
        """Map source rows and write them. Rows the plan rejects get dead-letter rows and are
        NOT removed from the target (a bad update never takes the good record with it).
        Returns the records written."""
        mapped = map_batch(batch, self.plan)
        self.upsert(self.target, mapped.batch)
        ns = mapped.source_namespace or batch.namespace
        self.dead_letter([r if r.namespace else replace(r, namespace=ns) for r in mapped.rejected],
                         [(ns, rid) for rid in mapped.source_ids])
        return len(mapped.batch)

    def to_target(self, keys: Iterable[Key]) -> int:
        """Re-read source keys and apply them on the target (absent = delete)."""
        n = 0
        for ns, ids in group(keys).items():
            found = self.retry(self.source.fetch, ids, ns)
            found.namespace = ns
            n += self.write_rows(found)
            gone = [self.target_key((ns, rid)) for rid in set(ids) - set(found.ids)]
            n += self.delete(self.target, [k for k in gone if k is not None])
        return n

    def mirror(self, target_batch: RecordBatch) -> int:
        """Target-shaped records written to the source in its shape (folded namespaces unfolded)."""
        assert self.reverse is not None, "no reverse plan before cutover"
        fold, name = self.plan.namespace_policy == "field", self.plan.namespace_field
        parts: dict[str, list[int]] = {}
        for i, meta in enumerate(target_batch.metadata):
            parts.setdefault(str(meta.get(name, "")) if fold else target_batch.namespace, []).append(i)
        for ns, rows in parts.items():
            b = target_batch.take(rows)
            for meta in b.metadata if fold else ():
                meta.pop(name, None)
            b.namespace = ns
            out = map_batch(b, self.reverse).batch
            out.namespace = ns if self.source.capabilities.namespaces else ""
            self.upsert(self.source, out)
        return len(target_batch)

    def to_source(self, keys: Iterable[Key]) -> int:
        """Re-read the target records of source keys and apply them on the source."""
        back = {tk: k for k in dict.fromkeys(keys) if (tk := self.target_key(k)) is not None}
        n = 0
        for tns, tids in group(back).items():
            found = self.retry(self.target.fetch, tids, tns)
            found.namespace = tns
            n += self.mirror(found) if len(found) else 0
            n += self.delete(self.source, [back[(tns, t)] for t in set(tids) - set(found.ids)])
        return n

    def repair(self, diffs: dict[Key, Key | None], toward: str) -> int:
        """Make the ``toward`` side ("target" or "source") equal the other for these target keys
        (mapped to their source keys; None when the source has no such record)."""
        with_source = [sk for sk in diffs.values() if sk is not None]
        target_only = [tk for tk, sk in diffs.items() if sk is None]
        if toward == "target":
            return self.to_target(with_source) + self.delete(self.target, target_only)
        n = self.to_source(with_source)
        for tns, tids in group(target_only).items():  # only on the target: copy it back
            found = self.retry(self.target.fetch, tids, tns)
            found.namespace = tns
            n += self.mirror(found) if len(found) else 0
        return n

    # -- fingerprints ----------------------------------------------------------------------
    def source_rows(self, skip: set[Key]) -> Iterator[tuple[Key, bytes, Key, RecordBatch, int]]:
        """(target key, digest, source key, mapped batch, row) per source record the plan maps."""
        cursor = None
        while True:
            batch, cursor = self.retry(self.source.scan, cursor, 1000)
            if len(batch):
                mapped = map_batch(batch, self.plan)
                for i, (tkey, digest) in enumerate(batch_digests(mapped.batch, **self.opts)):
                    skey = (mapped.source_namespace, mapped.source_ids[i])
                    if skey not in skip:
                        yield tkey, digest, skey, mapped.batch, i
            if cursor is None:
                return

    def target_digests(self) -> Iterator[tuple[Key, bytes]]:
        return self.target.digests(**self.opts, keep_unit_rows=True)  # see validate.verify

    def really_differ(self, want: dict[Key, tuple[RecordBatch, int]]) -> set[Key]:
        """Exact re-check of digest mismatches, vectorized: vectors to 1e-6 after normalizing
        under cosine-normalizing targets (bit-exact otherwise), metadata as canonical JSON."""
        out: set[Key] = set()
        norm, as_float = self.opts["normalize"], self.opts["numbers_as_float"]
        for tns, tids in group(want).items():
            for start in range(0, len(tids), 1000):
                chunk = tids[start:start + 1000]
                got = self.retry(self.target.fetch, chunk, tns)
                where = {rid: j for j, rid in enumerate(got.ids)}
                out.update((tns, t) for t in chunk if t not in where)
                both = [t for t in chunk if t in where]
                if not both:
                    continue
                ok = np.ones(len(both), bool)
                rows = [where[t] for t in both]
                multi = bool(want[(tns, both[0])][0].named)  # several vectors: compared by name
                have: dict[str | None, np.ndarray] = {**got.dense_vectors()} if multi else {None: got.vectors}
                names: list[str | None] = [*want[(tns, both[0])][0].dense_vectors()] if multi else [None]
                for name in names:
                    a = np.stack([(w.dense_vectors()[name or ""] if multi else w.vectors)[i]
                                  for w, i in (want[(tns, t)] for t in both)])
                    b = have[name][rows] if name in have else np.zeros((len(both), 0), np.float32)
                    ok &= same_vectors(a, b, name in self.opts["normalize_named"] if multi else norm)
                for k, t in enumerate(both):
                    (wb, i), j = want[(tns, t)], where[t]
                    if not (ok[k] and _sparse(wb, i) == _sparse(got, j) and canonical_metadata(
                            wb.metadata[i], as_float) == canonical_metadata(got.metadata[j], as_float)):
                        out.add((tns, t))
        return out


def _sparse(batch: RecordBatch, i: int) -> Any:
    return None if batch.sparse is None else batch.sparse[i]


@dataclass
class Fingerprints:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    sums: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, key: Key, digest: bytes) -> None:
        b = bucket_of(key)
        self.counts[b] += 1
        self.sums[b] = (self.sums[b] + int.from_bytes(digest[:8], "little")) & _MASK

    def differing(self, other: "Fingerprints") -> set[int]:
        return {b for b in range(BUCKETS)
                if (self.counts[b], self.sums[b]) != (other.counts[b], other.sums[b])}


@dataclass
class Diff:
    buckets: int  # buckets that differed
    records: int  # source records compared
    changed: dict[Key, Key] = field(default_factory=dict)  # target key -> source key
    missing: dict[Key, Key] = field(default_factory=dict)  # on the source, not on the target
    extra: list[Key] = field(default_factory=list)  # on the target, not on the source

    def keys(self) -> dict[Key, Key | None]:
        return {**self.changed, **self.missing, **{k: None for k in self.extra}}

    def counts(self) -> dict[str, int]:
        return {"records": self.records, "buckets_differing": self.buckets, "changed": len(self.changed),
                "missing": len(self.missing), "extra": len(self.extra)}


def compare(sides: Sides, skip: set[Key] | None = None, tick: Callable[[], None] = lambda: None) -> Diff:
    """Bucket fingerprints of both sides; then the differing ids of the buckets that differ.
    ``skip``: source keys left out on both sides (refused or dead-lettered records); ``tick``
    is called as the scans go (the sync renews its lease there)."""
    skip = skip or set()
    tskip = {tk for k in skip if (tk := sides.target_key(k)) is not None}
    src, tgt, records = Fingerprints(), Fingerprints(), 0
    for tkey, digest, *_ in sides.source_rows(skip):
        src.add(tkey, digest)
        records += 1
        if not records % 1000:
            tick()
    for n, (tkey, digest) in enumerate(sides.target_digests()):
        if tkey not in tskip:
            tgt.add(tkey, digest)
        if not n % 1000:
            tick()
    bad = src.differing(tgt)
    diff = Diff(len(bad), records)
    if not bad:
        return diff
    want = {tk: (d, sk, b, i) for tk, d, sk, b, i in sides.source_rows(skip) if bucket_of(tk) in bad}
    have = {tk: d for tk, d in sides.target_digests() if bucket_of(tk) in bad and tk not in tskip}
    diff.missing = {tk: w[1] for tk, w in want.items() if tk not in have}
    suspects = {tk: (w[2], w[3]) for tk, w in want.items() if tk in have and have[tk] != w[0]}
    diff.changed = {tk: want[tk][1] for tk in sides.really_differ(suspects)}
    diff.extra = [tk for tk in have if tk not in want]
    return diff
