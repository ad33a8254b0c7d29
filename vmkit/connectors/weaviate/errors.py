"""Which Weaviate errors a retry can cure, decided from their text where the status says nothing.

Two places need it:

- per-object errors inside a successful batch (``BatchObjectsReply.errors``) carry only a
  message;
- gRPC handler errors: Weaviate's handlers return plain Go errors, which grpc-go sends as status
  UNKNOWN with the error's text (``adapters/handlers/grpc``), so a replication failure ("cannot
  achieve consistency level ALL"), memory pressure or a shard still loading all arrive as
  UNKNOWN. The status code alone would make them terminal.

The server's own list of temporary conditions is ``entities/errors/transient.go``
(``IsTransient``): memory pressure (``ErrNotEnoughMemory`` "not enough memory",
``ErrNotEnoughMappings`` "not enough memory mappings"), a store switched read-only under disk
pressure (``storagestate.ErrStatusReadOnly`` "store is read-only"), a full disk
(``syscall.ENOSPC`` "no space left on device") and an HNSW insert with no usable entrypoint
("no usable entrypoint"). Replication errors come from ``usecases/replica`` (``MsgCLevel``
"cannot achieve consistency level", ``ErrReplicas`` "cannot reach enough replicas").
"""

from __future__ import annotations

# Lower-case fragments of messages a retry can cure.
TRANSIENT_MARKERS = (
    # transport and timeouts
    "deadline exceeded", "timeout", "timed out", "unavailable", "temporar",
    "connection refused", "connection reset", "too many requests", "resource exhausted", "try again",
    # replication (usecases/replica)
    "consistency level", "not enough replicas", "cannot reach enough replicas",
    # entities/errors/transient.go
    "not enough memory", "store is read-only", "no space left on device", "no usable entrypoint",
    # a lazily loaded shard that cannot load yet (adapters/repos/db/shard_lazyloader.go, Load:
    # "memory pressure: cannot load shard", "acquiring permit to load shard: ..."), or a tenant
    # being activated (weaviate_tenants)
    "memory pressure", "acquiring permit to load shard", "not ready",
)
# gRPC statuses that are transient whatever their text.
TRANSIENT_STATUSES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


def is_transient_text(message: str) -> bool:
    """True if ``message`` names a condition a retry can cure (see the module docstring)."""
    lower = message.lower()
    return any(m in lower for m in TRANSIENT_MARKERS)


def is_transient_status(status: str, details: str) -> bool:
    """A gRPC status name and its details: transient statuses always, UNKNOWN by its text."""
    return status in TRANSIENT_STATUSES or (status == "UNKNOWN" and is_transient_text(details))
