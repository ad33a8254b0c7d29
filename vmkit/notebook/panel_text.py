"""The panel's words: which buttons apply in which phase, and the lines it shows. Plain
functions (no widgets), so they are tested and reused without a frontend."""

from __future__ import annotations

import html

from vmkit.migration.status import Status

PHASE_TEXT = {
    "idle": "ready",
    "connecting": "connecting to the source and the target",
    "planning": "planning (profiling the source)",
    "copying": "copying",
    "validating": "copying (sampled validation)",
    "verifying": "full verification: every id and content hash on both sides",
    "pausing": "pausing after the batch in flight",
    "paused": "paused, connections open: Resume continues at once",
    "stopping": "stopping after the batch in flight",
    "stopped": "stopped: Start continues from the checkpoint",
    "rolling_back": "rolling back",
    "rolled_back": "rolled back",
    "completed": "completed",
    "unverified": "copied, but full verification failed: repair",
    "failed": "failed: see the error below; Start continues from the checkpoint",
    "running elsewhere": "running in another process (watched; Stop asks it to stop)",
    "watched": "not running",
}


def phase_line(status: Status, phase: str) -> str:
    """HTML: ``<b>id</b> · phase text · migration state``, with a data-phase attribute."""
    text = PHASE_TEXT.get(phase, phase)
    return (f"<span class='vmkit-phase' data-phase='{html.escape(phase)}'><b>{html.escape(status.id)}</b>"
            f" · {html.escape(text)} · migration {html.escape(status.headline)}</span>")


def enabled_buttons(phase: str, state: str) -> set[str]:
    if state in ("completed", "rolled_back"):
        return set()
    on = {"idle": {"Start"}, "stopped": {"Start"}, "failed": {"Start"}, "unverified": {"Start"},
          "connecting": {"Stop"}, "planning": {"Stop"},
          "copying": {"Pause", "Stop"}, "validating": {"Pause", "Stop"},
          "pausing": {"Stop"}, "paused": {"Resume", "Stop"}}.get(phase, set())
    if phase not in ("pausing", "stopping", "rolling_back", "verifying") and state == "in_progress":
        on = on | {"Rollback"}
    return on


def validation_line(status: Status) -> str:
    v = status.validation
    parts = [f"sampled validation: {v.get('batches') or 0} batches, {v.get('records') or 0} records"]
    if v.get("mean_cos") is not None:
        parts += [f"mean cosine {v['mean_cos']:.4f}", f"min cosine {v['min_cos']:.4f}"]
    parts += [f"failures {v.get('failures') or 0}", f"rejected records {status.records_rejected}"]
    if status.verification:
        parts.append(f"full verification {status.verification}")
    return " · ".join(parts)


def error_lines(status: Status, error: BaseException | None) -> list[str]:
    lines = [f"error: {type(error).__name__}: {error}"] if error is not None else []
    return lines + [f"latest: {e}" for e in dict.fromkeys(status.last_errors)]  # deduplicated
