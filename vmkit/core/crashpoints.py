"""Named points where the crash tests kill the process for real (SIGKILL to itself).

``VMKIT_CRASH_AT="after_ack:3"`` kills the process the 3rd time it reaches ``after_ack``.
Unset (always, outside tests) this costs one dict lookup per call.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def hit(name: str) -> None:
    spec = os.environ.get("VMKIT_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
