"""Small notebook views: a table that says so when it is empty, and a collection's
``describe()`` as a table (its dataclass repr is one long line that wraps mid-path)."""

from __future__ import annotations

import html
from typing import Any

from vmkit.connectors.base import CollectionInfo


class Note:
    """A one-line note shown in place of an empty table or chart."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return f"<p style='color:#57606a;font-style:italic'>{html.escape(self.text)}</p>"

    def __repr__(self) -> str:
        return self.text


def table(df: Any, empty: str) -> Any:
    """``df`` itself, or a Note saying ``empty`` when it has no rows (not a header alone)."""
    return df if len(df) else Note(empty)


class InfoView:
    """``describe()`` of a collection: one row per fact, namespaces largest first."""

    def __init__(self, info: CollectionInfo, limit: int = 10) -> None:
        self.info, self.limit = info, limit

    def rows(self) -> list[tuple[str, str]]:
        i = self.info
        rows = [("collection", i.name), ("records", f"{i.count:,}"),
                ("vector", f"{i.vector_name or 'default'}: dim {i.dimension}, {i.metric}"),
                ("sparse vectors", "yes" if i.sparse else "no")]
        rows += [("named vector", f"{n}: dim {v.get('dimension')}, {v.get('metric')}")
                 for n, v in sorted(i.extra_vectors.items())]
        rows += [("skipped vector", f"{n}: {why}") for n, why in sorted(i.skipped_vectors.items())]
        if any(i.namespaces):
            top = sorted(i.namespaces.items(), key=lambda kv: -kv[1])
            rows.append(("namespaces", f"{len(top):,}"))
            rows += [(f"  {ns or '(default)'}", f"{n:,}") for ns, n in top[: self.limit]]
            if len(top) > self.limit:
                rows.append(("  ...", f"{len(top) - self.limit:,} more"))
        rows += [(f"{f.get('severity', 'warning')}: {f.get('field', '')}", str(f.get("message", "")))
                 for f in i.findings]
        return rows

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in self.rows())
        return f"<table style='border-collapse:collapse'>{body}</table>"

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.rows())


def describe(info: CollectionInfo | None) -> InfoView | Note:
    return Note("the collection does not exist") if info is None else InfoView(info)
