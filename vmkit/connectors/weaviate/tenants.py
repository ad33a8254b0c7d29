"""Tenant activity of a Weaviate source: which tenants vmkit reads, and waking them only when the
plan says so.

A tenant is ACTIVE (HOT), INACTIVE (COLD), OFFLOADED (FROZEN), or on its way between them:
OFFLOADING (FREEZING) and ONLOADING (UNFREEZING); the SDK reports the newer names
(``weaviate/collections/grpc/tenants.py``, ``map_activity_status``). Reading an inactive tenant
fails ("tenant not active") unless the collection has ``autoTenantActivation``, which loads it on
the first read, and leaves it loaded: a scan of a production source would wake every cold tenant.

So tenant activity is a decision, made on the source URI (stored in the plan with it):

- ``tenants=fail`` (the default): inactive tenants are not read; the plan has an error listing
  them, and a read of one is a terminal error;
- ``tenants=active``: only active tenants are read (the plan lists the others as not copied);
- ``tenants=activate``: each inactive tenant is activated for reading and put back to its former
  state (INACTIVE or OFFLOADED) once read. A tenant in transition (OFFLOADING/ONLOADING) is
  waited for, then treated the same. The scan cursor carries the tenants activated and not yet
  put back, so a run resumed after a crash puts them back when it has read them; a crash before
  the first batch of such a tenant is committed leaves it active (the log names it: "activated
  tenant ...").
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vmkit.core.errors import ConfigError, TerminalError, TransientError

if TYPE_CHECKING:
    from vmkit.connectors.weaviate.connector import WeaviateConnector

log = logging.getLogger("vmkit.connectors.weaviate.connector")

POLICIES = ("fail", "active", "activate")
ACTIVE = frozenset({"ACTIVE", "HOT"})
MOVING = frozenset({"OFFLOADING", "ONLOADING", "FREEZING", "UNFREEZING"})
WAIT_POLLS = 20  # status reads while a tenant becomes active (each after a backoff pause)


def policy_of(value: str | None) -> str:
    policy = (value or "fail").lower()
    if policy not in POLICIES:
        raise ConfigError(f"tenants= must be one of {'|'.join(POLICIES)}, not {value!r}")
    return policy


def _status(tenant: Any) -> str:
    status = getattr(tenant, "activity_status", "ACTIVE")
    return str(getattr(status, "value", status))


class TenantActivity:
    """Activity states seen, and the tenants this connector activated (name -> former state)."""

    def __init__(self, conn: WeaviateConnector, policy: str) -> None:
        self._conn = conn
        self.policy = policy
        self.states: dict[str, str] = {}
        self.woken: dict[str, str] = {}
        self._lock = threading.RLock()
        self._held = 0
        self.skipping = False  # scans leave out the tenants a count leaves out (see sampling)

    def note(self, tenants: dict[str, Any]) -> None:
        """Record the states of a tenant listing (``tenants.get()``)."""
        self.states.update((n, _status(t)) for n, t in tenants.items())

    def adopt(self, woken: dict[str, str]) -> None:
        """Tenants an earlier scan activated (from its cursor): put back once read."""
        with self._lock:
            for tenant, former in woken.items():
                if tenant not in self.woken:
                    self.woken[tenant] = former
                    self.states.pop(tenant, None)

    def inactive(self, names: list[str]) -> dict[str, str]:
        return {n: self.states[n] for n in names if self.states.get(n, "ACTIVE") not in ACTIVE and n not in self.woken}

    def readable(self, names: list[str]) -> list[str]:
        """The tenants to read: with ``tenants=active`` the active ones only."""
        if self.policy != "active":
            return names
        for n in names:
            if n and n not in self.states:  # a tenant pinned by tenant= was never listed
                self.refresh(n)
        return [n for n in names if self.states.get(n, "ACTIVE") in ACTIVE]

    def countable(self, names: list[str]) -> list[str]:
        """The tenants a count may read: inactive ones only with ``tenants=activate`` (with
        ``tenants=fail`` the plan has an error for them, and a scan stops at them)."""
        if self.policy == "activate":
            return names
        cold = self.inactive(names)
        return [n for n in names if n not in cold]

    def findings(self, names: list[str]) -> list[dict[str, Any]]:
        """Plan findings about the inactive ones among ``names`` (every tenant listed)."""
        cold = self.inactive(names)
        if not cold:
            return []
        listed = ", ".join(f"{n} ({s})" for n, s in sorted(cold.items())[:20]) + (" ..." if len(cold) > 20 else "")
        what = f"{len(cold)} inactive tenants: {listed}"
        if self.policy == "active":
            return [{"field": "namespace", "message": what, "policy": "not read (tenants=active)", "count": len(cold)}]
        if self.policy == "activate":
            return [{"field": "namespace", "message": what, "count": len(cold),
                     "policy": "each activated for reading, then put back to its state (tenants=activate)"}]
        return [{"field": "namespace", "severity": "error", "count": len(cold),
                 "message": f"{what}; reading one would load it (with autoTenantActivation it stays loaded)",
                 "policy": "choose on the source URI: tenants=active (skip them) or tenants=activate "
                           "(activate each for reading, then put it back)"}]

    # -- waking and putting back --------------------------------------------------------------
    def refresh(self, tenant: str) -> str:
        with self._conn._errors("read tenant"):
            got = self._conn._coll().tenants.get_by_name(tenant)
        if got is None:
            raise TerminalError(f"tenant {tenant!r} not found in {self._conn.collection}")
        self.states[tenant] = _status(got)
        return self.states[tenant]

    def wake(self, tenant: str) -> None:
        """Make ``tenant`` readable (activating it only with ``tenants=activate``); it stays
        active until ``put_back``."""
        if not tenant:
            return
        with self._lock:
            state = self.states.get(tenant) or self.refresh(tenant)
            if state in ACTIVE:
                return
            if tenant not in self.woken:
                if self.policy != "activate":
                    raise TerminalError(
                        f"tenant {tenant!r} of {self._conn.collection} is not active ({state}): vmkit does not "
                        "wake it unless the source URI says tenants=activate (or tenants=active to skip it)")
                if state in MOVING:
                    state = self._wait(tenant, lambda s: s not in MOVING)
                if state not in ACTIVE:
                    self._set(tenant, "ACTIVE")
                    self.woken[tenant] = state
                    log.info("activated tenant %s of %s (was %s) for reading", tenant, self._conn.collection, state)
            self._wait(tenant, lambda s: s in ACTIVE)

    def _wait(self, tenant: str, done: Any) -> str:
        for attempt in range(WAIT_POLLS):
            state = self.refresh(tenant)
            if done(state):
                return state
            self._conn._backoff(min(attempt, 3))
        raise TransientError(f"tenant {tenant!r} of {self._conn.collection} is not ready: still {state}")

    def _set(self, tenant: str, state: str) -> None:
        from weaviate.classes.tenants import Tenant, TenantActivityStatus

        with self._conn._errors("update tenant"):
            self._conn._coll().tenants.update(Tenant(name=tenant, activity_status=TenantActivityStatus(state)))
        self.states.pop(tenant, None)

    def put_back(self, tenant: str) -> None:
        """The state ``tenant`` had before vmkit activated it (nothing if vmkit did not)."""
        with self._lock:
            former = self.woken.get(tenant)
            if former is None:
                return
            self._set(tenant, {"HOT": "ACTIVE", "COLD": "INACTIVE", "FROZEN": "OFFLOADED"}.get(former, former))
            del self.woken[tenant]
            log.info("put tenant %s of %s back to %s", tenant, self._conn.collection, former)

    @contextlib.contextmanager
    def awake(self, tenant: str) -> Iterator[None]:
        """Read ``tenant``: woken if need be, put back afterwards unless held or woken before."""
        before = tenant in self.woken
        self.wake(tenant)
        try:
            yield
        finally:
            if not before and not self._held:
                self.put_back(tenant)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Tenants woken inside stay active until the end, then are put back (describe, sample)."""
        with self._lock:
            self._held += 1
            before = set(self.woken)
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                for t in [t for t in self.woken if t not in before]:
                    try:
                        self.put_back(t)
                    except Exception as exc:  # noqa: BLE001 - close() tries again; keep the first error
                        log.error("putting tenant %s of %s back failed (tried again on close): %s",
                                  t, self._conn.collection, exc)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """A sample for the plan reads what a count reads: with ``tenants=fail`` it leaves the
        inactive tenants out (the plan reports them), and it never wakes one."""
        self.skipping = True
        self._conn._tenant_scan.forget_tenants()
        try:
            with self.hold():
                yield
        finally:
            self.skipping = False
            self._conn._tenant_scan.forget_tenants()

    def close(self) -> None:
        for t in list(self.woken):
            try:
                self.put_back(t)
            except Exception as exc:  # noqa: BLE001 - closing: say which tenant stays active
                log.error("tenant %s of %s stays active: putting it back failed: %s", t, self._conn.collection, exc)
