"""Exception tree for vmkit.

Retry decisions are made with ``isinstance`` on the two marker classes, never on message text::

    VmkitError
     ├── ConfigError               bad URI, option or missing credential
     │    ├── MissingDependency    an optional SDK is not installed (names the extra)
     │    └── SecretInURI          credentials embedded in a URI (never echoed)
     ├── StateError
     │    ├── UnknownMigration
     │    ├── IllegalTransition
     │    ├── LeaseHeld            another live runner drives this migration
     │    ├── PlanChanged          resume with a plan that differs from the stored one
     │    ├── AutoRolledBack       sampled validation failed too often: the run rolled back
     │    ├── BreakerTripped       rejections passed their bound: the run stopped (resumable)
     │    └── StateCorrupt         integrity check failed or the file is not a vmkit store
     ├── ConnectorError
     │    ├── TransientError       timeouts, 429, 5xx: retried with backoff
     │    └── TerminalError        4xx, auth, missing collection: fail fast
     │         ├── InvalidData      the target refused the records themselves: the runner
     │         │                    bisects the batch and dead-letters the culprits
     │         └── SystemicRefusal  the target refuses every record for one reason: the
     │                              request or collection is at fault; nothing dead-lettered
     ├── PlanError                 the plan cannot be carried out
     └── VerificationFailed        full verification found missing/extra/mismatched ids
"""

from __future__ import annotations


class VmkitError(Exception):
    """Base of every error vmkit raises on purpose."""


class ConfigError(VmkitError):
    pass


class MissingDependency(ConfigError):
    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the '{package}' package is required for this connector: "
            f"pip install 'vmkit[{extra}]'"
        )
        self.package = package
        self.extra = extra


class SecretInURI(ConfigError):
    def __init__(self, scheme: str) -> None:
        super().__init__(
            f"{scheme}:// URI carries credentials; vmkit takes secrets only from environment "
            "variables (the URI is stored in the state file and shown in reports)"
        )


class StateError(VmkitError):
    pass


class UnknownMigration(StateError):
    def __init__(self, migration_id: str) -> None:
        super().__init__(f"no migration with id '{migration_id}' in the state store")
        self.migration_id = migration_id


class IllegalTransition(StateError):
    def __init__(self, migration_id: str, current: str, wanted: str) -> None:
        super().__init__(
            f"migration '{migration_id}' is {current}; it cannot become {wanted}"
        )
        self.current = current
        self.wanted = wanted


class LeaseHeld(StateError):
    pass


class PlanChanged(StateError):
    pass


class StateCorrupt(StateError):
    pass


class BreakerTripped(StateError):
    """Rejections passed ``max_reject_rate``: the run stopped after its last checkpoint."""


class AutoRolledBack(StateError):
    pass


class ConnectorError(VmkitError):
    pass


class TransientError(ConnectorError):
    """Worth retrying: the same request may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TerminalError(ConnectorError):
    """Retrying cannot help: bad request, auth, missing collection, invalid data."""


class InvalidData(TerminalError):
    """The request was refused because of the data it carried (HTTP 400 on a write)."""


class SystemicRefusal(TerminalError):
    """The target refused record after record for one and the same reason: the request or the
    collection is at fault (dimension, schema, quota), not the records, so they are not
    dead-lettered and the run stops resumably."""


class PlanError(VmkitError):
    pass


class VerificationFailed(VmkitError):
    pass
