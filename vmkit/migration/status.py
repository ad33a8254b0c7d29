"""Status of a migration, read from the state store: for terminals, notebooks and the CLI."""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from vmkit.state.lease import holder_alive
from vmkit.state.store import StateStore


@dataclass
class Status:
    id: str
    state: str
    source_uri: str
    target_uri: str
    batches: int
    records_read: int
    records_written: int
    records_rejected: int
    expected_records: int
    scan_done: bool
    stop_requested: bool
    running: str | None  # "pid 123 on host" while a live runner holds the lease
    verification: str | None
    verification_detail: dict[str, Any] | None
    validation: dict[str, Any]
    errors: dict[str, int]
    last_errors: list[str]
    rejections_by_reason: dict[str, int]
    events: list[str] = field(default_factory=list)
    sync: dict[str, Any] | None = None  # vmkit.sync progress, for sync-driven migrations
    planned: bool = True  # False between registration and the stored plan
    # A migration run in partitions (vmkit.state.partitions): {"done": read to their end, "total"}
    partitions: dict[str, int] | None = None

    @property
    def headline(self) -> str:
        """The state as a user reads it first: a completion with rejections says so."""
        if self.state == "not_started" and not self.planned:
            return "not_started (planning)"
        if self.state == "completed" and self.records_rejected:
            return f"completed with {self.records_rejected} rejected"
        return self.state

    @property
    def balanced(self) -> bool:
        """read = written + rejected (every record accounted for)."""
        return self.records_read == self.records_written + self.records_rejected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        pct = f" ({100 * self.records_read / self.expected_records:.1f}%)" if self.expected_records else ""
        out = [
            f"migration {self.id}: {self.headline}"
            + (" (stop requested)" if self.stop_requested and self.state == "in_progress" else "")
            + (f", running as {self.running}" if self.running else ""),
            f"  {self.source_uri} -> {self.target_uri}",
            f"  batches {self.batches}; read {self.records_read}{pct} of ~{self.expected_records}; "
            f"written {self.records_written}; rejected {self.records_rejected}",
        ]
        if self.partitions:
            out.append(f"  partitions: {self.partitions['done']} of {self.partitions['total']} read to their end")
        v = self.validation
        if v.get("batches"):
            out.append(
                f"  sampled validation: {v['batches']} batches, {v['records']} records, cosine mean "
                f"{_f(v['mean_cos'])} min {_f(v['min_cos'])} max {_f(v['max_cos'])}, "
                f"{v['failures']} failures, {v['missing']} missing, completeness {_f(v['completeness'])}"
            )
        if self.verification:
            d = self.verification_detail or {}
            extra = "" if self.verification == "skipped" else (
                f" ({d.get('matched', 0)} matched, {d.get('missing_count', 0)} missing, "
                f"{d.get('extra_count', 0)} extra, {d.get('mismatched_count', 0)} mismatched)")
            out.append(f"  full verification: {self.verification}{extra}")
            out += namespace_count_lines(d)
        elif self.state == "completed":
            out.append("  full verification: none")
        if self.rejections_by_reason:
            out.append("  rejections by reason:")
            out += [f"    {n:>7}  {reason}" for reason, n in self.rejections_by_reason.items()]
        if self.errors:
            out.append("  errors: " + ", ".join(f"{k} {n}" for k, n in self.errors.items()))
            out += [f"    {e}" for e in self.last_errors]
        if self.sync:
            from vmkit.state.journal import SyncStatus

            out += SyncStatus(**self.sync).lines()
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """A table per part (notebooks): nothing wraps mid-path, empty parts are left out."""
        color = {"completed": "#1a7f37", "rolled_back": "#cf222e", "in_progress": "#9a6700"}.get(self.state, "#57606a")
        head, *rest = self.lines()
        v, d = self.validation, self.verification_detail or {}
        pct = f" ({100 * self.records_read / self.expected_records:.1f}%)" if self.expected_records else ""
        rows = [("source", self.source_uri), ("target", self.target_uri),
                ("progress", f"{self.batches:,} batches; read {self.records_read:,}{pct} of "
                             f"~{self.expected_records:,}; written {self.records_written:,}; "
                             f"rejected {self.records_rejected:,}")]
        if v.get("batches"):
            rows.append(("sampled validation", f"{v['batches']} batches, {v['records']} records, cosine "
                                               f"mean {_f(v['mean_cos'])} min {_f(v['min_cos'])}, "
                                               f"{v['failures']} failures, {v['missing']} missing"))
        if self.verification:
            rows.append(("full verification", self.verification if self.verification == "skipped" else
                         f"{self.verification}: {d.get('matched', 0)} matched, {d.get('missing_count', 0)} "
                         f"missing, {d.get('extra_count', 0)} extra, {d.get('mismatched_count', 0)} mismatched"))
        rows += [(f"rejected: {reason}", f"{n:,}") for reason, n in self.rejections_by_reason.items()]
        if self.errors:
            rows.append(("errors", ", ".join(f"{k} {n}" for k, n in self.errors.items())))
            rows += [("", e) for e in self.last_errors]
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(str(val))}</td></tr>" for k, val in rows)
        sync = ""
        if self.sync:
            from vmkit.state.journal import SyncStatus

            sync = SyncStatus(**self.sync)._repr_html_()
        return (f"<div><b style='color:{color}'>{html.escape(head)}</b>"
                f"<table style='border-collapse:collapse'>{body}</table>{sync}</div>")


def namespace_count_lines(detail: dict[str, Any], limit: int = 20) -> list[str]:
    """Records read vs the source's own count per namespace, from a stored verification
    (``Verification.to_dict``): namespaces that do not reconcile first, ``limit`` in all."""
    counts: dict[str, dict[str, int]] = detail.get("namespace_counts") or {}
    if not counts:
        return []

    def off(c: dict[str, int]) -> bool:
        return not c["read"] == c["source"] == c.get("source_before", c["source"])

    bad = sum(1 for c in counts.values() if off(c))
    out = [f"  records read vs source count per namespace: {len(counts) - bad} of {len(counts)} reconcile"]
    order = sorted(counts, key=lambda ns: (not off(counts[ns]), ns.encode()))
    for ns in order[:limit]:
        c = counts[ns]
        changed = (f" (before the scan {c['source_before']})"
                   if c.get("source_before", c["source"]) != c["source"] else "")
        out.append(f"    {ns or '(default)'!s:<24} read {c['read']:>10}  source {c['source']:>10}{changed}"
                   + ("  MISMATCH" if off(c) else ""))
    if len(order) > limit:
        out.append(f"    ... and {len(order) - limit} more namespaces")
    return out


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}"


def read_status(store: StateStore, mid: str) -> Status:
    rec = store.get(mid)
    running = None
    if rec.lease_owner and holder_alive(rec.lease_owner, rec.lease_pid, rec.lease_host, rec.lease_at,
                                         time.time()):
        running = f"pid {rec.lease_pid} on {rec.lease_host}"
    v = store.query(
        "SELECT count(*), coalesce(sum(n),0), sum(mean_cos*n)/nullif(sum(n),0), min(min_cos),"
        " max(max_cos), coalesce(sum(failures),0), coalesce(sum(missing),0),"
        " sum(completeness*n)/nullif(sum(n),0) FROM validations WHERE migration_id=?", mid)[0]
    validation = dict(zip(("batches", "records", "mean_cos", "min_cos", "max_cos", "failures",
                           "missing", "completeness"), v))
    errors = dict(store.query("SELECT kind, count(*) FROM errors WHERE migration_id=? GROUP BY kind", mid))
    last = [f"{kind}: {msg}" for kind, msg in store.query(
        "SELECT kind, message FROM errors WHERE migration_id=? ORDER BY at DESC LIMIT 3", mid)]
    reasons = dict(store.query(
        "SELECT reason, count(*) FROM rejections WHERE migration_id=? GROUP BY reason ORDER BY 2 DESC", mid))
    events = [f"{e}: {d}" if d else e for e, d in store.query(
        "SELECT event, detail FROM events WHERE migration_id=? ORDER BY at DESC LIMIT 5", mid)]
    from vmkit.state.journal import sync_status

    synced = sync_status(store, mid)
    from vmkit.state.partitions import rows

    parts = rows(store, mid)
    expected = 0
    if rec.plan_json:
        from vmkit.planning.plan import Plan

        expected = Plan.from_json(rec.plan_json).source_count
    return Status(
        id=rec.id, state=rec.state, source_uri=rec.source_uri, target_uri=rec.target_uri,
        batches=rec.batches, records_read=rec.records_read, records_written=rec.records_written,
        records_rejected=sum(reasons.values()), expected_records=expected, scan_done=rec.scan_done,
        stop_requested=rec.stop_requested, running=running, verification=rec.verification,
        verification_detail=rec.verification_detail, validation=validation, errors=errors,
        last_errors=last, rejections_by_reason=reasons, events=events,
        sync=synced.to_dict() if synced else None, planned=rec.plan_json is not None,
        partitions={"done": sum(p.scan_done for p in parts), "total": len(parts)} if parts else None,
    )
