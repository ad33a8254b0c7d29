"""Pinecone (emulator) -> Qdrant (embedded, on disk) with one collection per namespace
(``namespace_policy="collections"``): each namespace's records in a collection of its own, no
namespace payload field, verification per collection, a stop and a resume, the way back into
one Pinecone index with namespaces (``?namespaces=collections``), and the CLI flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.core.ids import ORIGINAL_ID_KEY

pytest.importorskip("pinecone")
pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

DIM, PER_NS = 16, 300
SPACES = ("", "alpha", "beta", "team-7")
COLLECTIONS = {"": "docs", "alpha": "docs_alpha", "beta": "docs_beta", "team-7": "docs_team-7"}
FAST = {"retry_initial_s": 0.01, "retry_cap_s": 0.5, "batch_size": 100}


def rows(ns: str) -> list[tuple]:
    """The same ids in every namespace: only the collection tells the copies apart."""
    vecs = np.random.default_rng(len(ns) + 1).standard_normal((PER_NS, DIM)).astype(np.float32)
    return [(f"doc-{i:04d}", vecs[i], {"i": i, "tags": ["x", ns or "dflt"]},
             ([i, i + 5], [0.25, 1.5]) if i % 3 == 0 else None) for i in range(PER_NS)]


@pytest.fixture
def source(pinecone_emu: PineconeEmulator) -> str:
    pinecone_emu.create_index("src", DIM, "dotproduct")
    for ns in SPACES:
        pinecone_emu.seed("src", rows(ns), namespace=ns)
    return "pinecone://src"


def target(root: Path, collection: str = "docs") -> str:
    return f"qdrant:///{root}/q?collection={collection}"


def collection_rows(root: Path, name: str) -> dict[str, tuple[np.ndarray, dict]]:
    """Source id -> (vector, payload) of every point in one collection, read with plain scans."""
    out: dict[str, tuple[np.ndarray, dict]] = {}
    with connect(target(root, name)) as q:
        cursor = None
        while True:
            batch, cursor = q.scan(cursor, 500)
            for i, meta in enumerate(batch.metadata):
                out[meta[ORIGINAL_ID_KEY]] = (batch.vectors[i], meta)
            if cursor is None:
                return out


def assert_collections_hold_their_namespaces(root: Path) -> None:
    for ns, name in COLLECTIONS.items():
        got = collection_rows(root, name)
        want = rows(ns)
        assert sorted(got) == [r[0] for r in want], name
        for rid, vec, meta, _ in want[:: 37]:
            assert np.array_equal(got[rid][0], vec)  # dotproduct: stored as written
            assert got[rid][1] == {**meta, ORIGINAL_ID_KEY: rid}  # and no namespace field


def test_each_namespace_lands_in_its_own_collection_and_resumes(source, tmp_path):
    state = tmp_path / "s.db"
    m = Migration.create(source, target(tmp_path), migration_id="p2c", state=state,
                         namespace_policy="collections", **FAST)
    assert m.plan.namespace_collections == COLLECTIONS
    assert "namespace 'team-7' -> collection 'docs_team-7'" in str(m.plan)
    first = m.run(max_batches=5)
    assert first.state == "in_progress" and first.records_written == 500
    with connect(target(tmp_path, "docs_alpha")) as q:  # the resume starts mid-namespace
        assert 0 < q.count() < PER_NS

    final = Migration.open("p2c", state=state).run()
    total = len(SPACES) * PER_NS
    assert final.state == "completed" and final.verification == "passed", str(final)
    assert (final.verification_detail or {}).get("matched") == total
    assert final.records_read == final.records_written == total and final.records_rejected == 0
    assert final.balanced  # read = written + rejected, no batch counted twice
    assert_collections_hold_their_namespaces(tmp_path)

    # Verification reads every collection: a point gone from one of them is found, by namespace.
    with connect(target(tmp_path, "docs_beta")) as q:
        gone, _ = q.scan(None, 1)
        q.delete(gone.ids)
    result = Migration.open("p2c", state=state).verify()
    assert not result.passed and result.missing == [("beta", gone.ids[0])]


def test_the_collections_come_back_as_namespaces(source, tmp_path, pinecone_emu):
    forward = Migration.create(source, target(tmp_path), migration_id="out", state=tmp_path / "s.db",
                               namespace_policy="collections", **FAST).run()
    assert forward.state == "completed"
    back = Migration.create(target(tmp_path) + "&namespaces=collections", "pinecone://back",
                            migration_id="back", state=tmp_path / "s.db", **FAST)
    assert back.plan.source_namespaces == {ns: PER_NS for ns in SPACES}
    st = back.run()
    assert st.state == "completed" and st.verification == "passed", str(st)
    assert st.records_written == len(SPACES) * PER_NS
    with connect("pinecone://back") as pc:
        assert pc.describe().namespaces == {ns: PER_NS for ns in SPACES}
        for ns in SPACES:
            want = rows(ns)[:40]
            got = pc.fetch([r[0] for r in want], ns)
            assert got.ids == [r[0] for r in want]  # the original ids, in their namespace
            assert np.array_equal(got.vectors, np.stack([r[1] for r in want]))
            assert got.metadata[1] == {"i": 1.0, "tags": ["x", ns or "dflt"]}


def test_cli_flags_and_a_real_kill(source, tmp_path):
    """`vmkit plan` and `vmkit migrate start` with the flags; the run is SIGKILLed after the
    4th batch was acknowledged and before its checkpoint, and `migrate resume` ends equal."""
    def cli(*args: str, crash: str = "") -> subprocess.CompletedProcess:
        env = {**os.environ, "VMKIT_STATE": str(tmp_path / "s.db"), "VMKIT_CRASH_AT": crash}
        return subprocess.run([sys.executable, "-m", "vmkit", *args], capture_output=True, text=True,
                              env=env, timeout=300, check=False)

    flags = ["--namespaces", "collections", "--namespace-collection", "{namespace}_in_{collection}"]
    planned = cli("plan", "--source", source, "--target", target(tmp_path), *flags)
    assert planned.returncode == 0, planned.stderr
    assert "namespace 'alpha' -> collection 'alpha_in_docs'" in planned.stdout
    killed = cli("migrate", "start", "--source", source, "--target", target(tmp_path), "--id", "c",
                 "--batch-size", "100", "--no-progress", *flags, crash="after_ack:4")
    assert killed.returncode == -9, killed.stderr
    resumed = cli("migrate", "resume", "--id", "c", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "migration c: completed" in resumed.stdout and "verification: passed" in resumed.stdout
    assert f"read {len(SPACES) * PER_NS} (100.0%)" in resumed.stdout  # the replayed batch counted once
    for ns in SPACES:
        with connect(target(tmp_path, f"{ns}_in_docs" if ns else "docs")) as q:
            assert q.count() == PER_NS
