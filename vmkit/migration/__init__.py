"""migration: carrying a plan out and proving it. The runner (``Migration``: start, resume,
stop, rollback, repair; ``control``: stop, pause, phases), the batch loop in this process
(``batch_loop``, on the ``pipeline``) or on Dask (``distributed``, ``chunk``), sampled
validation, full verification, status.
May import: ``vmkit.planning``, ``vmkit.connectors``, ``vmkit.state``, ``vmkit.core``.
"""
