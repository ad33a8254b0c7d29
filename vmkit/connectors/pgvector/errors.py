"""psycopg errors as vmkit's: by SQLSTATE class (PostgreSQL docs, Appendix A "Error Codes")."""

from __future__ import annotations

from vmkit.core.errors import ConnectorError, InvalidData, TerminalError, TransientError

# Worth retrying: serialization failure, deadlock, lock not available, connection trouble,
# insufficient resources, operator intervention (shutdown, cancel), system errors.
_TRANSIENT = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "57014", "58000", "58030"}
_TRANSIENT_CLASSES = ("08", "53")
# The records themselves: data exceptions (a value a type refuses: dimensions, NaN, NUL,
# out of range), integrity (not null, check), program limits (an index row too large).
_DATA_CLASSES = ("22", "23", "54")


def classify(exc: Exception, where: str) -> ConnectorError:
    """TransientError, InvalidData or TerminalError for a psycopg error; one line of text."""
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    text = " ".join(str(exc).split())[:500]
    msg = f"pgvector {where}: {type(exc).__name__}: {text}"
    if state in _TRANSIENT or state[:2] in _TRANSIENT_CLASSES:
        return TransientError(msg)
    if state[:2] in _DATA_CLASSES:
        return InvalidData(msg)
    if state.startswith("28") or state == "3D000":  # authorization, no such database
        return TerminalError(msg)
    if not state and isinstance(exc, psycopg.OperationalError):  # no server answer: connection lost
        if "password" in text or "authentication" in text:
            return TerminalError(msg)
        return TransientError(msg)
    return TerminalError(msg)
