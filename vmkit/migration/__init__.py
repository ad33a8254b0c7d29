"""migration: carrying a plan out and proving it. The runner (``Migration``: start, resume,
stop, rollback, repair), the batch pipeline, sampled validation, full verification, status.
May import: ``vmkit.planning``, ``vmkit.connectors``, ``vmkit.state``, ``vmkit.core``.
"""
