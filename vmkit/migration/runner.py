"""Migration: create, plan, run (or resume), verify, complete, roll back, repair. The loop
itself is ``batch_loop.copy_batches`` (this process) or ``distributed.dask_loop``; stop and
pause are ``control``.

Per batch: read -> map -> write (acknowledged) -> checkpoint (one SQLite transaction) ->
sampled validation. A kill at any point costs at most the batch in flight: its write is an
idempotent upsert by a deterministic id, replayed on resume.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, Callable

from vmkit.connectors import connect, open_target
from vmkit.connectors.base import Connector
from vmkit.core import crashpoints
from vmkit.core.errors import (
    ConfigError,
    IllegalTransition,
    InvalidData,
    PlanChanged,
    PlanError,
    StateError,
    TerminalError,
    TransientError,
)
from vmkit.core.interpreter import tuned_for_io
from vmkit.core.options import MigrationOptions
from vmkit.core.records import SOURCE_UNREADABLE
from vmkit.core.retry import call_with_retry
from vmkit.migration.batch_loop import Progress, copy_batches
from vmkit.migration.control import RunControl, trap_signals
from vmkit.migration.guards import unreadable_refusal
from vmkit.migration.status import Status, read_status
from vmkit.migration.verification import Verification, verify
from vmkit.planning.plan import Plan
from vmkit.planning.planner import plan as make_plan
from vmkit.state.store import StateStore

if TYPE_CHECKING:
    from vmkit.migration.repair import RepairOutcome

log = logging.getLogger("vmkit.migration.runner")


class Migration(RunControl):
    """One migration, backed by a row in the state store. Build with ``create`` or ``open``."""

    def __init__(self, store: StateStore, migration_id: str) -> None:
        self.store = store
        self.id = migration_id
        rec = store.get(migration_id)
        self.options = MigrationOptions.from_dict(rec.options)
        self._stop = threading.Event()
        self._paused = threading.Event()  # pause(): hold before the next batch, connections open
        self.on_phase: Callable[[str], None] | None = None  # connecting, planning, copying, ...
        self.on_verify: Callable[[str, int], None] | None = None  # full verification's progress
        self._source: Connector | None = None
        self._target: Connector | None = None
        self.verified: Verification | None = None  # full verification an executor already ran (Dask)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, source: str, target: str, *, migration_id: str | None = None,
               state: Any = None, plan: Plan | None = None, **options: Any) -> "Migration":
        """Register a new migration, then make its plan (unless given); nothing is written to
        the target yet. The migration is registered before planning, the slow part: a kill
        while planning leaves one that ``run()`` (``vmkit migrate resume``) plans and runs."""
        opts = MigrationOptions(**options)
        store = state if isinstance(state, StateStore) else StateStore(state)
        mid = migration_id or f"mig-{uuid.uuid4().hex[:8]}"
        with connect(source) as src, connect(target) as dst:  # validates URIs before storing them
            store.create(mid, source, target, opts.to_dict())
            migration = cls(store, mid)
            migration._make_plan(src, dst, plan)
        log.info("created migration %s: %s -> %s", mid, source, target)
        return migration

    def _make_plan(self, source: Connector, target: Connector, given: Plan | None = None) -> Plan:
        """Make (or take) the plan and store it; PlanError, recorded, if it has errors."""
        opts = self.options
        crashpoints.hit("planning")
        # Planning only reads, so a transient failure re-plans from the start.
        the_plan = given or call_with_retry(
            make_plan, source, target, batch_size=opts.batch_size, nested_policy=opts.nested_policy,
            namespace_policy=opts.namespace_policy, namespace_collection=opts.namespace_collection,
            partitions=opts.partitions, attempts=opts.retry_attempts, initial_s=opts.retry_initial_s, cap_s=opts.retry_cap_s)
        if (the_plan.source_uri, the_plan.target_uri) != (source.uri, target.uri):
            raise PlanChanged("the plan was made for other URIs")
        if the_plan.errors:
            msg = "the plan has errors:\n" + "\n".join(str(w) for w in the_plan.errors)
            self.store.record_error(self.id, None, "plan", msg)
            raise PlanError(msg)
        self.store.set_plan(self.id, the_plan.to_json(), the_plan.hash)
        return the_plan

    @classmethod
    def open(cls, migration_id: str, state: Any = None) -> "Migration":
        store = state if isinstance(state, StateStore) else StateStore(state)
        return cls(store, migration_id)

    @property
    def plan(self) -> Plan:
        rec = self.store.get(self.id)
        if rec.plan_json is None:
            raise StateError(f"migration '{self.id}' has no plan yet (planning was interrupted or "
                             f"failed): `vmkit migrate resume --id {self.id}` plans and runs it")
        return Plan.from_json(rec.plan_json)

    def status(self) -> Status:
        return read_status(self.store, self.id)

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()

    def __str__(self) -> str:
        return str(self.status())

    # -- connectors ------------------------------------------------------------------------
    def _open_connectors(self) -> tuple[Connector, Connector]:
        rec = self.store.get(self.id)
        if self._source is None:
            self._source = connect(rec.source_uri)
        if self._target is None:  # routed by the plan's namespace map, once there is a plan
            self._target = (open_target(rec.target_uri, self.plan.target_routes) if rec.plan_json is not None
                            else connect(rec.target_uri))
        return self._source, self._target

    def close(self) -> None:
        for conn in (self._source, self._target):
            if conn is not None:
                conn.close()
        self._source = self._target = None

    def rollback(self, drop_target: bool = False) -> Status:
        """Before cutover: stop, leave traffic on the source, mark rolled_back; optionally
        drop the target collection, only if vmkit created it. Safe to repeat after a crash."""
        if self.store.query("SELECT 1 FROM sqlite_master WHERE name='sync_state'") and (phase := self.store.query(
                "SELECT phase FROM sync_state WHERE migration_id=?", self.id)) and phase[0][0] == "cutting_over":
            raise StateError(f"migration '{self.id}' is a sync inside its cutover (application writes wait): "
                             f"finish it with `vmkit sync cutover --id {self.id}`, or undo it with "
                             f"`vmkit sync abort --id {self.id}` (writes go to the source again) and then roll back")
        rec = self.store.get(self.id)
        lease = self.store.acquire_lease(self.id)
        try:
            if rec.state != "rolled_back":
                self.store.transition(self.id, "rolled_back", "drop target" if drop_target else "")
            crashpoints.hit("during_rollback")
            if drop_target and rec.created_target:
                _, target = self._open_connectors()
                if self._retry(target.describe) is not None:
                    self._retry(target.drop)
                    self.store.event(self.id, "target dropped", rec.target_uri)
            elif drop_target:
                log.warning("target %s was not created by vmkit: left in place", rec.target_uri)
        finally:
            self.store.release_lease(self.id, lease)
            self.close()
        return self.status()

    def update_options(self, **changes: Any) -> None:
        """Change stored options for the runs to come (e.g. ``accept_unreadable=True``,
        ``max_reject_rate=0.05`` after the breaker stopped a run)."""
        changed = {k: v for k, v in changes.items() if getattr(self.options, k, object()) != v}
        if not changed:
            return
        opts = MigrationOptions.from_dict({**self.options.to_dict(), **changed})
        self.store.set_options(self.id, opts.to_dict(), ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        self.options = opts

    # -- the run ---------------------------------------------------------------------------
    def replan(self, new_plan: Plan, accept_change: bool = False) -> None:
        """Replace the stored plan. Refused when it changes what happens to the data, unless
        ``accept_change``: batches already written followed the old plan."""
        rec = self.store.get(self.id)
        if rec.state in ("completed", "rolled_back"):
            raise IllegalTransition(self.id, rec.state, "replanned")
        if new_plan.hash != rec.plan_hash and not accept_change:
            raise PlanChanged(
                f"migration '{self.id}': the new plan ({new_plan.hash}) differs from the stored one "
                f"({rec.plan_hash}); pass accept_change=True (CLI: --accept-plan-change) to use it")
        self.store.set_plan(self.id, new_plan.to_json(), new_plan.hash)
        self.store.event(self.id, "plan replaced", f"{rec.plan_hash} -> {new_plan.hash}")

    def run(self, max_batches: int | None = None,
            on_batch: Callable[[Progress], None] | None = None, *, executor: str = "inprocess",
            cluster: Any = None, workers: int | None = None) -> Status:
        """Run (or resume) until the source is exhausted and verified, a stop is requested,
        or ``max_batches`` batches were done. A finished migration is left unchanged.
        ``executor="dask"`` runs the plan's partitions on a Dask cluster (``cluster``: a
        Client, a cluster object or a scheduler address; None: a LocalCluster of ``workers``
        processes; see vmkit.migration.distributed)."""
        rec = self.store.get(self.id)
        if rec.state in ("completed", "rolled_back"):
            log.info("migration %s is %s; nothing to do", self.id, rec.state)
            return self.status()
        from vmkit.state.journal import read_row

        if read_row(self.store, self.id) is not None:  # a plain copy would ignore its journal
            raise StateError(f"migration '{self.id}' is driven by vmkit.sync: use "
                             f"`vmkit sync catch-up|verify|cutover --id {self.id}`")
        if rec.batches or rec.state == "in_progress":
            self.store.check_integrity()
        lease = self.store.acquire_lease(self.id)
        restore = trap_signals(self._stop)
        try:
            with tuned_for_io(self.options.tune_interpreter):
                self._phase("connecting")
                source, target = self._open_connectors()
                if self.store.get(self.id).plan_json is None:  # registered, then killed while planning
                    self._phase("planning")
                    self._make_plan(source, target)
                    target.close()  # reopened as the plan routes it
                    self._target = None
                    source, target = self._open_connectors()
                plan = self._checked_plan(source, target)
                loop = self._loop_for(executor, source, target, cluster, workers)
                if rec.state == "not_started":
                    self._prepare_target(target, plan)
                    self.store.transition(self.id, "in_progress")
                self.store.set_flag(self.id, "stop_requested", False)
                self._stop.clear()
                finished = self.store.get(self.id).scan_done or loop(
                    source, target, plan, lease, max_batches, on_batch)
                if finished:
                    self._retry(target.finish_load)
                    self._finish(source, target, plan, lease)
        finally:
            restore()
            self.store.release_lease(self.id, lease)
            self.close()
        return self.status()

    def _loop_for(self, executor: str, source: Connector, target: Connector, cluster: Any,
                  workers: int | None) -> Callable[..., bool]:
        """The batch loop of ``executor``, refused before any write when it cannot run."""
        from vmkit.state.partitions import rows

        if executor == "dask":
            from vmkit.migration.distributed import dask_loop, refuse_single_process, require_dask

            require_dask()
            refuse_single_process(source, target)
            return functools.partial(dask_loop, self, cluster=cluster, workers=workers)
        if executor != "inprocess":
            raise ConfigError(f"executor must be 'inprocess' or 'dask', not {executor!r}")
        if rows(self.store, self.id):
            raise StateError(f"migration '{self.id}' runs in partitions on Dask: resume it with "
                             f"`vmkit migrate resume --id {self.id} --workers N` (or --scheduler)")
        return functools.partial(copy_batches, self)

    def _checked_plan(self, source: Connector, target: Connector) -> Plan:
        stored = self.plan
        if stored.source_uri != source.uri or stored.target_uri != target.uri:
            raise PlanChanged(f"migration '{self.id}': URIs differ from the stored plan")
        if stored.hash != self.store.get(self.id).plan_hash:
            raise PlanChanged(f"migration '{self.id}': the stored plan does not match its hash "
                              "(edited outside vmkit?); use replan() to set a plan")
        return stored

    def _prepare_target(self, target: Connector, plan: Plan) -> None:
        def ensure() -> None:
            # Retried as a whole: a create whose acknowledgement was lost is seen by describe().
            if target.describe() is None:
                self.store.set_flag(self.id, "created_target", True)  # intent first: rollback may drop it
                target.create(plan.target)
                log.info("created target %s (dim %d, %s)", plan.target.name, plan.target.dimension,
                         plan.target.metric)

        self._retry(ensure)

    def _freshness(self, target: Connector) -> float:
        """Read-after-write wait: as configured, else 10 s for eventually consistent targets."""
        if self.options.freshness_s is not None:
            return self.options.freshness_s
        return 10.0 if target.capabilities.eventually_consistent else 0.0

    def _retry(self, fn: Callable[..., Any], *args: Any) -> Any:
        def note(exc: BaseException, attempt: int) -> None:
            self.store.record_error(self.id, None, "transient", f"{type(exc).__name__}: {exc}")

        try:
            return call_with_retry(fn, *args, attempts=self.options.retry_attempts,
                                   initial_s=self.options.retry_initial_s,
                                   cap_s=self.options.retry_cap_s, on_retry=note)
        except TransientError as exc:  # retries exhausted: say why the run stopped
            self.store.record_error(self.id, None, "transient", f"gave up: {type(exc).__name__}: {exc}")
            raise
        except InvalidData:
            raise  # not an error of the run: the writer dead-letters the refused records
        except TerminalError as exc:
            self.store.record_error(self.id, None, "terminal", f"{type(exc).__name__}: {exc}")
            raise

    def _finish(self, source: Connector, target: Connector, plan: Plan, lease: str) -> None:
        if not self.options.verify:
            self.store.set_verification(self.id, "skipped", {"reason": "verify=False"})
        else:
            self._phase("verifying")
            result, self.verified = self.verified, None
            if result is not None:
                self.store.set_verification(self.id, "passed" if result.passed else "failed", result.to_dict())
            else:
                result = self.verify(source, target, plan, lease=lease)
            if not result.passed:
                log.error("migration %s: full verification failed; state stays in_progress; "
                          "`vmkit migrate repair --id %s` copies the records found again\n%s",
                          self.id, self.id, result)
                return
        self._complete(lease)

    def _complete(self, lease: str) -> None:
        """completed, unless source records could not be read and the user did not accept it."""
        unreadable = self.store.rejected_count(self.id, SOURCE_UNREADABLE)
        if unreadable_refusal(self.store, self.id, self.options, unreadable):
            return
        why = "full verification passed" if self.options.verify else "verification skipped by the user"
        if unreadable:
            why += f"; {unreadable} unreadable source records accepted"
        self.store.transition(self.id, "completed", why, lease=lease)

    def repair(self) -> "RepairOutcome":
        """After a failed verification or unreadable source records: copy again what is wrong
        (vmkit.migration.repair), verify again, and complete if that passes."""
        from vmkit.migration.repair import repair

        lease = self.store.acquire_lease(self.id)
        try:
            with tuned_for_io(self.options.tune_interpreter):
                source, target = self._open_connectors()
                outcome = repair(self, lease, source, target, self._checked_plan(source, target))
                if outcome.verification is not None and outcome.verification.passed:
                    self._complete(lease)
        finally:
            self.store.release_lease(self.id, lease)
            self.close()
        log.info("migration %s: %s", self.id, outcome)
        return outcome

    def verify(self, source: Connector | None = None, target: Connector | None = None,
               plan: Plan | None = None, lease: str | None = None, reverse: bool = False) -> Verification:
        """Full verification (every id, every content hash, counts per namespace against the
        source's own); the outcome is stored. ``reverse`` also maps every target record back
        through the reverse plan and compares it with the raw source (a second read of the
        target). A runner holding ``lease`` keeps it fresh while verification runs."""
        own = source is None
        if own:
            source, target = self._open_connectors()
        assert source is not None and target is not None
        try:
            with tuned_for_io(self.options.tune_interpreter), self.store.lease_kept(self.id, lease):
                result = verify(source, target, plan or self.plan, freshness_s=self._freshness(target),
                                dead_letter=self.store.refused_keys(self.id), retry=self._retry, reverse=reverse,
                                progress=self.on_verify)
        finally:
            if own:
                self.close()
        self.store.set_verification(self.id, "passed" if result.passed else "failed", result.to_dict())
        return result

    def _progress(self, plan: Plan, seconds: float) -> Progress:
        rec = self.store.get(self.id)
        return Progress(rec.batches, rec.records_read, rec.records_written,
                        self.store.rejected_count(self.id), plan.source_count, seconds)
