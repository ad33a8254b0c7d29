"""The panel's view of a migration run in partitions (the Dask executor): one line per
partition (records read of its estimate, done or not) and the Dask dashboard's address, both
read from the state store, so a panel watching another process shows them too."""

from __future__ import annotations

import html
import re

from vmkit.state.partitions import rows
from vmkit.state.store import StateStore

_DASHBOARD = re.compile(r"dashboard (\S+)")


def dashboard_link(store: StateStore, mid: str) -> str | None:
    """The dashboard of the last Dask run (its "dask run" event), if it offered one."""
    found = store.query("SELECT detail FROM events WHERE migration_id=? AND event='dask run' "
                        "ORDER BY at DESC LIMIT 1", mid)
    match = _DASHBOARD.search(found[0][0] or "") if found else None
    return match.group(1) if match else None


def partitions_html(store: StateStore, mid: str, limit: int = 24) -> str:
    """A small table of the partitions and their progress ("" for a run in one process)."""
    parts = rows(store, mid)
    if not parts:
        return ""
    done = sum(p.scan_done for p in parts)
    link = dashboard_link(store, mid)
    head = f"<b>partitions</b>: {done} of {len(parts)} read to their end"
    if link:
        head += f' · <a href="{html.escape(link)}" target="_blank">Dask dashboard</a>'
    lines = []
    for p in parts[:limit]:
        est = int(p.spec.get("estimated") or 0)
        share = f" of ~{est:,}" if est else ""
        mark = "done" if p.scan_done else ("reading" if p.batches else "waiting")
        lines.append(f"<tr><td>{html.escape(p.key)}</td><td>{p.records_read:,}{share}</td><td>{mark}</td></tr>")
    more = f"<p>... and {len(parts) - limit} more</p>" if len(parts) > limit else ""
    return f"<div>{head}<table>{''.join(lines)}</table>{more}</div>"
