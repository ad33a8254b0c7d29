"""state: the SQLite state store that survives a kill: migrations and their state machine,
checkpoints, the batch ledger, validation rows, dead letters, errors, events (``store``; its tables
and rows in ``schema``), and the runner lease (``leasing``: its rows; ``lease``: whether a holder
is alive). May import: ``vmkit.core``.
"""

from vmkit.state.store import StateStore

__all__ = ["StateStore"]
