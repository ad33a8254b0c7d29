"""state: the SQLite state store that survives a kill: migrations and their state machine,
checkpoints, the batch ledger, validation rows, dead letters, errors, events, and the runner
lease (``lease``: who may drive a migration). May import: ``vmkit.core``.
"""

from vmkit.state.store import StateStore

__all__ = ["StateStore"]
