"""A Hypothesis state machine over the memory connector: the source changes between runs,
runs stop after N batches, crash at every dangerous point, resume, verify, roll back, and the
state file is rewound to an older copy.

Crashes. ``vmkit.core.crashpoints.hit`` (the seam the real-process SIGKILL tests use) is replaced
by one that raises ``SimulatedCrash``, a BaseException, at the chosen point: after the target
acknowledged a batch and before its checkpoint, inside the checkpoint transaction (SQLite
rolls it back, as it does after a kill), before the last batch's checkpoint, and during
sampled validation. The exception unwinds the runner without committing, exactly where a kill
would stop it; the Migration object is then abandoned and the migration reopened from the
state file with a new store connection, like a new process. One difference from a kill: the
runner's ``finally`` releases the lease (lease take-over after a real kill is tested with real
processes in test_lease_cli.py).

What is guaranteed when the source changes between runs (vmkit copies a snapshot; following a
live source is the journaled sync, a separate feature):

1. Nothing invented: every target record is a version some source record had (same id,
   same vector, same metadata).
2. The checkpoint is never ahead of acknowledged writes: every source record a run read at
   or before the cursor it committed is on the target, at the version that run read or at a
   newer one (versions only grow, and every write carries the source's current version).
3. The ledger and the counters agree, and each committed batch starts where the previous one
   ended.
4. Full verification is truthful at any moment: the missing, extra and mismatched ids it
   reports are exactly the differences between source and target.
5. After draining (a fresh full pass after the last source change) the target holds every
   source record at its current version; its only other records are ones deleted from the
   source after they were copied (deletes are not propagated by a bulk copy), and
   verification reports exactly those as extra, so the pass completes iff there are none.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from resilience.helpers import ledger, snapshot

import vmkit.core.crashpoints
from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import _id_key, reset_memory_stores
from vmkit.core.records import RecordBatch
from vmkit.state.store import StateStore

DIM = 4
NAMESPACES = ("", "b")
KEYS = st.tuples(st.sampled_from(NAMESPACES), st.one_of(st.integers(0, 11), st.sampled_from(
    ["a", "b", "k7", "zz", "\u00e9"])))


class SimulatedCrash(BaseException):
    """Unwinds the runner like a kill: no except clause in vmkit handles it."""


def content(key: tuple[str, object], version: int) -> tuple[np.ndarray, dict]:
    seed = abs(hash((key, version))) % (2**32)
    vec = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vec, {"v": version, "ns": key[0]}


def position(key: tuple[str, object]) -> tuple[str, tuple]:
    return key[0], _id_key(key[1])


def covered(key: tuple[str, object], cursor: str | None, done: bool) -> bool:
    """Whether a memory:// scan has passed ``key`` at this committed cursor."""
    if done:
        return True
    if cursor is None:
        return False
    ns, last = orjson.loads(cursor)
    return key[0] < ns or (key[0] == ns and last is not None and _id_key(key[1]) <= _id_key(last))


class MigrationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        reset_memory_stores()
        self.dir = Path(tempfile.mkdtemp(prefix="vmkit-sm-", dir=_shm()))
        self.state = self.dir / "state.db"
        self.backup: tuple[Path, str] | None = None  # (copy, migration id) taken between runs
        connect("memory://src").create(TargetSpec("src", DIM, "dot"))
        self.source: dict[tuple[str, object], int] = {}  # key -> current version
        self.versions = 0
        self.ever: dict[tuple[str, object], set[int]] = {}  # key -> every version it had
        self.must_hold: dict[tuple[str, object], int] = {}  # key -> minimum version on the target
        self.mid: str | None = None
        self.n = 0
        self.crash: tuple[str, int] | None = None
        self.hits: dict[str, int] = {}
        self._orig_hit = vmkit.core.crashpoints.hit
        vmkit.core.crashpoints.hit = self._hit

    def teardown(self) -> None:
        try:
            self.drain()
        finally:
            vmkit.core.crashpoints.hit = self._orig_hit
            shutil.rmtree(self.dir, ignore_errors=True)
            reset_memory_stores()

    # -- plumbing ------------------------------------------------------------------------------
    def _hit(self, name: str) -> None:
        if self.crash is None or self.crash[0] != name:
            return
        self.hits[name] = self.hits.get(name, 0) + 1
        if self.hits[name] >= self.crash[1]:
            self.crash = None
            raise SimulatedCrash(name)

    def _open(self) -> Migration:
        assert self.mid is not None
        return Migration.open(self.mid, StateStore(self.state))

    def _rec(self):
        store = StateStore(self.state)
        try:
            return store.get(self.mid), ledger(store, self.mid)
        finally:
            store.close()

    def _target(self) -> dict[tuple[str, object], int]:
        """What the target holds, as source versions (content checked against the version)."""
        out = {}
        for key, (vec, meta, _) in snapshot("memory://dst").items():
            version = meta["v"]
            want_vec, want_meta = content(key, version)
            assert vec == want_vec.tobytes() and meta == want_meta, f"{key} is no version it had"
            out[key] = version
        return out

    def _run(self, max_batches: int | None = None, crash: tuple[str, int] | None = None) -> None:
        """One run (a process, in effect): record what it committed, as coverage."""
        rec, _ = self._rec()
        before = (rec.cursor, rec.scan_done)
        frozen = dict(self.source)
        self.crash, self.hits = crash, {}
        m = self._open()
        try:
            m.run(max_batches=max_batches)
        except SimulatedCrash as exc:
            event(f"crashed at {exc}")
        finally:
            self.crash = None
            m.store.close()  # abandoned: the next operation opens the state afresh
        rec, _ = self._rec()
        after = (rec.cursor, rec.scan_done)
        for key, version in frozen.items():
            if covered(key, *after) and not covered(key, *before):
                self.must_hold[key] = max(self.must_hold.get(key, 0), version)

    def _state(self) -> str | None:
        return None if self.mid is None else self._rec()[0].state

    def _true_diff(self) -> tuple[set, set, set]:
        target = self._target()
        missing = {k for k in self.source if k not in target}
        extra = {k for k in target if k not in self.source}
        mismatched = {k for k in self.source if k in target and target[k] != self.source[k]}
        return missing, extra, mismatched

    # -- the source changes (between runs) --------------------------------------------------------
    @initialize(keys=st.lists(KEYS, min_size=4, max_size=16, unique=True),
                batch_size=st.sampled_from([1, 2, 3, 5]), sample_rate=st.sampled_from([0.0, 0.5, 1.0]))
    def start(self, keys, batch_size, sample_rate):
        self.upsert_source(keys)
        self.new_migration(batch_size, sample_rate)

    @rule(keys=st.lists(KEYS, min_size=1, max_size=6, unique=True))
    def upsert_source(self, keys):
        conn = connect("memory://src")
        for ns in NAMESPACES:
            mine = [k for k in keys if k[0] == ns]
            if not mine:
                continue
            rows = []
            for key in mine:
                self.versions += 1
                self.source[key] = self.versions
                self.ever.setdefault(key, set()).add(self.versions)
                rows.append(content(key, self.versions))
            conn.upsert(RecordBatch([k[1] for k in mine], np.stack([r[0] for r in rows]),
                                    [r[1] for r in rows], namespace=ns))

    @precondition(lambda self: self.source)
    @rule(data=st.data())
    def delete_source(self, data):
        keys = data.draw(st.lists(st.sampled_from(sorted(self.source, key=position)),
                                  min_size=1, max_size=4, unique=True))
        conn = connect("memory://src")
        for key in keys:
            conn.delete([key[1]], key[0])
            del self.source[key]

    # -- the migration --------------------------------------------------------------------------
    @precondition(lambda self: self._state() in (None, "completed", "rolled_back"))
    @rule(batch_size=st.sampled_from([1, 2, 3, 5]), sample_rate=st.sampled_from([0.0, 0.5, 1.0]))
    def new_migration(self, batch_size, sample_rate):
        self.n += 1
        self.mid = f"m{self.n}"
        store = StateStore(self.state)
        Migration.create("memory://src", "memory://dst", migration_id=self.mid, state=store,
                         batch_size=batch_size, sample_rate=sample_rate, auto_rollback_rate=None)
        store.close()

    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule(n=st.integers(1, 4))
    def run_batches(self, n):
        self._run(max_batches=n)

    # one rule per point, so that crashes are drawn often
    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule(nth=st.integers(1, 3))
    def crash_after_ack(self, nth):
        self._run(crash=("after_ack", nth))

    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule(nth=st.integers(1, 3))
    def crash_inside_commit(self, nth):
        self._run(crash=("inside_commit", nth))

    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule()
    def crash_before_the_last_checkpoint(self):
        self._run(crash=("last_batch", 1))

    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule(nth=st.integers(1, 2))
    def crash_during_validation(self, nth):
        self._run(crash=("during_validation", nth))

    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule()
    def resume(self):
        self._run()
        rec, _ = self._rec()
        assert rec.scan_done
        assert (rec.state == "completed") == (rec.verification == "passed")

    @precondition(lambda self: self._state() in ("in_progress", "completed")
                  and connect("memory://dst").describe() is not None)
    @rule()
    def verify(self):
        m = self._open()
        try:
            result = m.verify()
        finally:
            m.store.close()
        missing, extra, mismatched = self._true_diff()
        assert set(result.missing) == missing
        assert set(result.extra) == extra
        assert {k for k, _ in result.mismatched} == mismatched
        assert result.passed == (not (missing or extra or mismatched))

    @precondition(lambda self: self._state() == "in_progress")
    @rule(drop=st.booleans(), crash_first=st.booleans())
    def rollback(self, drop, crash_first):
        created = self._rec()[0].created_target
        m = self._open()
        if crash_first:
            self.crash, self.hits = ("during_rollback", 1), {}
            try:
                m.rollback(drop_target=drop)
            except SimulatedCrash:
                pass
            finally:
                self.crash = None
            m.store.close()
            assert self._state() == "rolled_back"  # marked before anything else happens
            m = self._open()
        m.rollback(drop_target=drop)  # again: safe to repeat after a crash
        m.store.close()
        assert self._state() == "rolled_back"
        if drop and created:
            assert connect("memory://dst").describe() is None
            self.must_hold.clear()
            self.backup = None  # a state copy from before the drop no longer matches the target

    @precondition(lambda self: self._state() == "completed")
    @rule()
    def rollback_after_completion_is_refused(self):
        from vmkit.core.errors import IllegalTransition

        m = self._open()
        try:
            with pytest.raises(IllegalTransition):
                m.rollback()
        finally:
            m.store.close()
        assert self._state() == "completed"

    # -- the state file rewound -----------------------------------------------------------------
    @precondition(lambda self: self._state() in ("not_started", "in_progress"))
    @rule()
    def back_up_state(self):
        copy = self.dir / "backup.db"
        with sqlite3.connect(self.state) as live, sqlite3.connect(copy) as dest:
            live.backup(dest)
        live.close()
        dest.close()
        self.backup = (copy, self.mid)

    @precondition(lambda self: self.backup is not None and self.backup[1] == self.mid)
    @rule()
    def restore_state(self):
        copy, _ = self.backup
        for suffix in ("-wal", "-shm"):
            Path(f"{self.state}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(copy, self.state)
        event("state rewound")

    # -- draining -------------------------------------------------------------------------------
    @rule()
    def drain(self):
        """A fresh full pass after the last source change (the current one is finished or
        rolled back first)."""
        state = self._state()
        if state in ("not_started", "in_progress"):
            self._run()
        self.new_migration(batch_size=4, sample_rate=0.5)
        self._run()
        target = self._target()
        for key, version in self.source.items():
            assert target.get(key) == version, f"{key}: source v{version}, target {target.get(key)}"
        extras = set(target) - set(self.source)
        assert extras <= set(self.ever), "a target record no source ever had"
        rec, _ = self._rec()
        result = rec.verification_detail
        event("drained with deleted records left as extra" if extras else "drained to equal")
        assert {tuple(k) for k in result["extra"]} == extras
        assert result["missing_count"] == result["mismatched_count"] == 0
        assert (rec.state == "completed") == (not extras)

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def nothing_invented_and_checkpoint_not_ahead(self):
        target = self._target()  # asserts every record is a version its key once had
        for key, version in target.items():
            assert version in self.ever.get(key, ()), f"{key}: v{version} never in the source"
        for key, version in self.must_hold.items():
            assert target.get(key, -1) >= version, f"committed {key} v{version}, target {target.get(key)}"

    @invariant()
    def ledger_agrees(self):
        if self.mid is None:
            return
        rec, rows = self._rec()
        assert rec.lease_owner is None  # every run gave its lease back
        assert rec.batches == len(rows) and [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert rec.records_read == sum(r[3] for r in rows)
        assert rec.records_written == sum(r[4] for r in rows)
        assert rec.cursor == (rows[-1][2] if rows else None)
        for a, b in zip(rows, rows[1:]):
            assert b[1] == a[2]


def _shm() -> str | None:
    import os

    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


TestMigrationMachine = MigrationMachine.TestCase
TestMigrationMachine.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.slow
def test_state_machine_soak():
    """The same machine, longer and randomized (make test-slow)."""
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(MigrationMachine, settings=settings(
        max_examples=200, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
