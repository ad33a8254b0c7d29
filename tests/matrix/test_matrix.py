"""Every pair of engines moves the same tricky corpus (tests/matrix/matrix_corpus.py) with
sampled validation and full verification: the migration ends completed and verified, every
record read is written or dead-lettered with a reason naming its field, and the target's own
count plus the rejections equals the source's own count. The source is first filled from the
corpus through a plan (what that engine can hold of it), so each pair starts from a real store.

The default run covers each engine once as source and once as target (a ring) and one SIGKILL
and resume into each engine; the other pairs are marked slow (``make test-slow``)."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from copying import copy_through
from matrix.engines import ENGINES, uri_for
from matrix.matrix_corpus import corpus_source
from resilience.helpers import resume, start_and_kill_after_a_batch

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.planning.plan import Plan
from vmkit.state.store import StateStore

NAMES = list(ENGINES)
RING = {(a, NAMES[(i + 1) % len(NAMES)]) for i, a in enumerate(NAMES)}
PAIRS = [pytest.param(a, b, id=f"{a}-to-{b}", marks=[] if (a, b) in RING else [pytest.mark.slow])
         for a, b in itertools.permutations(NAMES, 2)]
# The source of each kill test reaches the child process over the network.
KILL_SOURCE = {name: "weaviate" if name == "pinecone" else "pinecone" for name in NAMES}
KILL_BATCH = 200


@pytest.fixture
def work() -> Iterator[Path]:
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="vmkit-matrix-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def filled(engine: str, work: Path, request: pytest.FixtureRequest) -> tuple[str, int]:
    """A collection of ``engine`` holding what it can of the corpus, and its own count."""
    uri = uri_for(engine, work, request, "src")
    with connect(corpus_source()) as corpus, connect(uri) as src:
        copy_through(corpus, src, sample=2000)
    with connect(uri) as src:
        count = sum(src.namespace_counts().values())
    assert count > 1500, f"{engine} holds only {count} of the corpus"
    return uri, count


def assert_accounted(state: Path, mid: str, source: str, target: str, source_count: int) -> None:
    """Completed and verified; read = written + dead-lettered, each dead letter with a field
    and a reason the plan announced; the target's own count agrees."""
    store = StateStore(state)
    try:
        rec = store.get(mid)
        plan = Plan.from_json(rec.plan_json or "{}")
        rejections = store.query("SELECT record_id, field, reason FROM rejections WHERE migration_id=?", mid)
    finally:
        store.close()
    assert rec.state == "completed" and rec.verification == "passed", (rec.state, rec.verification)
    assert rec.records_read == source_count
    assert rec.records_read == rec.records_written + len(rejections)
    assert all(field and reason for _, field, reason in rejections), rejections[:3]
    announced = {w.field for w in plan.warnings}
    unannounced = {(field, reason.split(" (")[0]) for _, field, reason in rejections if field not in announced}
    assert not unannounced, f"rejections the plan did not announce: {sorted(unannounced)[:5]}"
    with connect(target) as dst:
        assert sum(dst.namespace_counts().values()) == source_count - len(rejections)


@pytest.mark.parametrize("src_engine,dst_engine", PAIRS)
def test_pair_moves_the_corpus_verified(src_engine: str, dst_engine: str, work: Path,
                                        request: pytest.FixtureRequest) -> None:
    source, count = filled(src_engine, work, request)
    target = uri_for(dst_engine, work, request, "dst")
    m = Migration.create(source, target, migration_id="pair", state=work / "state.db")
    assert not m.plan.errors, [str(w) for w in m.plan.errors]
    m.run()
    assert_accounted(work / "state.db", "pair", source, target, count)


@pytest.mark.parametrize("dst_engine", NAMES)
def test_sigkill_then_resume_into_each_engine(dst_engine: str, work: Path,
                                              request: pytest.FixtureRequest) -> None:
    source, count = filled(KILL_SOURCE[dst_engine], work, request)
    target = uri_for(dst_engine, work, request, "dst")
    state = work / "kill.db"
    done = start_and_kill_after_a_batch(source, target, "k", state, KILL_BATCH)
    assert 1 <= done < count // KILL_BATCH, f"the kill landed after {done} batches"
    code, out = resume("k", state)
    assert code in (0, 3), out  # 3: completed with records rejected by name
    assert_accounted(state, "k", source, target, count)
