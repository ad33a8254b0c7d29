"""sync: zero-downtime migration while the application keeps writing. The journal and its
``JournalingWriter``, the watermark bulk copy, catch-up, verified cutover and reverse sync.
May import: ``vmkit.migration``, ``vmkit.planning``, ``vmkit.connectors``, ``vmkit.state``,
``vmkit.core``.
"""

from typing import Any

__all__ = ["JournalingWriter", "Sync", "sync_status"]


def __getattr__(name: str) -> Any:  # the public names, imported on first use (no import cycle)
    if name in __all__:
        from vmkit.sync import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'vmkit.sync' has no attribute {name!r}")
