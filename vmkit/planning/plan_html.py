"""The plan as HTML tables for notebooks (``Plan._repr_html_``) and the HTML report: what the
text form says, plus the id policy and the field map its heading promises, without wrapping
paths mid-word."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from vmkit.core.ids import ORIGINAL_ID_KEY

if TYPE_CHECKING:
    from vmkit.planning.plan import Plan

_STYLE = "border-collapse:collapse;margin:.3em 0"


def _rows(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td style='text-align:left;word-break:keep-all'>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table style='{_STYLE}'>{body}</table>"


def id_policy(plan: Plan) -> str:
    accepted = sorted(plan.caps.get("id_kinds", ()))
    if set(accepted) >= {"string", "uint", "uuid"}:
        return "ids kept as they are (the target takes string, uint and uuid ids)"
    text = (f"the target takes {', '.join(accepted) or 'no'} ids; an id of another kind becomes "
            f"uuid5 of it, the original kept in '{ORIGINAL_ID_KEY}'")
    if "uint" not in accepted and "string" in accepted:
        text += ("; int ids travel as decimal text" if plan.uint_ids == "decimal"
                 else "; int ids become uuid5 (the source also holds string ids)")
    return text


def field_map(plan: Plan) -> list[tuple[str, str]]:
    """(source field, what happens to it) for every field the plan changes."""
    rows = [(a, f"renamed to {b}") for a, b in sorted(plan.renames.items())]
    rows += [(f, "written as JSON text (several types seen)") for f in plan.text_fields]
    rows += [(f, "dropped") for f in plan.drop_fields]
    if plan.nested_policy != "json" or not rows:
        rows.append(("nested values", {"json": "JSON text", "flatten": "flattened to dotted keys",
                                       "drop": "dropped"}.get(plan.nested_policy, plan.nested_policy)))
    return rows


def plan_html(plan: Plan) -> str:
    t = plan.target
    ns = {"field": f"field '{plan.namespace_field}'", "collections": "one collection each"}.get(
        plan.namespace_policy, plan.namespace_policy)
    rows: list[tuple[str, Any]] = [
        ("source", plan.source_uri), ("target", plan.target_uri),
        ("target collection", f"{t.name}: dim {t.dimension}, {t.metric}, sparse {t.sparse}"),
        ("records", f"{plan.source_count:,} in ~{plan.estimated_batches:,} batches of {plan.batch_size:,}"),
    ]
    if t.extra_vectors:
        rows.append(("named vectors", ", ".join(f"{n or 'default'} ({d}, {m})"
                                                 for n, (d, m) in t.vector_spaces().items())))
    if plan.estimates:
        rows.append(("estimates", f"~{plan.estimates['bytes'] / 1e6:.1f} MB in "
                                  f"~{int(plan.estimates['write_requests']):,} write requests"))
    if any(plan.source_namespaces):
        rows.append(("namespaces", f"{len(plan.source_namespaces)} -> {ns}"))
    rows.append(("id policy", id_policy(plan)))
    parts = [f"<div><b>plan</b> (hash {html.escape(plan.hash)})", _rows(rows),
             "<b>field map</b>", _rows(field_map(plan))]
    if plan.partitions:
        parts += [f"<b>partitions</b> ({len(plan.partitions)}, read independently)",
                  _rows([(p["key"], f"{p.get('namespace') or ''} [{p.get('lower')!r}, {p.get('upper')!r}) "
                                    f"~{int(p.get('estimated', 0)):,} records") for p in plan.partitions])]
    if plan.warnings:
        parts += ["<b>findings</b>", _rows([(f"{w.severity}: {w.field}", f"{w.message}"
                                              + (f" -> {w.policy}" if w.policy else "")
                                              + (f" ({w.count} sampled records)" if w.count else ""))
                                             for w in plan.warnings])]
    else:
        parts.append("<p>no findings: nothing is changed or refused</p>")
    return "".join(parts) + "</div>"
