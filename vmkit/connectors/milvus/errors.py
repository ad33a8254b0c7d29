"""pymilvus errors -> vmkit's: what a retry can fix, what the records caused, and the rest."""

from __future__ import annotations

from vmkit.core.errors import InvalidData, TerminalError, TransientError

# Messages about the request or the collection, not a record in it: every write fails alike.
_COLLECTION_LEVEL = ("dim", "not found", "does not exist", "not loaded", "schema", "auto_id", "partition")
# Client-side data checks (pymilvus/exceptions.py): a record's value did not fit its field.
_DATA_ERRORS = {"DataNotMatchException", "DataTypeNotMatchException", "ParamError"}


def classify(exc: Exception, secret: str = "") -> Exception:
    """Transient: unavailable, rate limited, or marked retriable by the server (pymilvus
    MilvusException.retriable, ErrorCode.RATE_LIMIT = 8). InvalidData: input errors that are
    about the records. Everything else terminal. One line, the token scrubbed."""
    name = type(exc).__name__
    text = str(getattr(exc, "message", "") or exc)
    if secret:
        text = text.replace(secret, "***")
    msg = f"milvus: {name}: {' '.join(text.split())[:500]}"
    code = getattr(exc, "code", None)
    if name in {"MilvusUnavailableException", "TimeoutError"} or getattr(exc, "retriable", False) or code == 8:
        return TransientError(msg)
    grpc_code = getattr(code, "name", "") if not isinstance(code, int) else ""
    if grpc_code in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}:
        return TransientError(msg)
    lowered = text.lower()
    if any(m in lowered for m in _COLLECTION_LEVEL):
        return TerminalError(msg)
    if name in _DATA_ERRORS or getattr(exc, "is_input_error", False):
        return InvalidData(msg)
    return TerminalError(msg)
