"""Embedded Qdrant writes share one SQLite commit per batch (vmkit/connectors/qdrant_commit.py).

What must hold: a written batch is on disk when upsert returns, a process killed mid-batch
leaves whole batches only, a write failing part-way keeps what was persisted, and a client without
the engine internals still writes through the engine's own commits.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vmkit import TargetSpec, connect
from vmkit.connectors.qdrant.commit import one_commit
from vmkit.core.records import RecordBatch

qdrant_client = pytest.importorskip("qdrant_client")
ROOT = Path(__file__).resolve().parents[3]
DIM = 8


def _batch(start: int, n: int) -> RecordBatch:
    rng = np.random.default_rng(start)
    return RecordBatch(ids=list(range(start, start + n)),
                       vectors=rng.standard_normal((n, DIM)).astype(np.float32),
                       metadata=[{"i": i} for i in range(start, start + n)])


def _on_disk(directory: Path) -> set[int]:
    """Ids the directory holds, read by a fresh engine (what survives the writer)."""
    client = qdrant_client.QdrantClient(path=str(directory))
    try:
        points, _ = client.scroll("docs", limit=100_000, with_payload=False)
        return {int(p.id) for p in points}
    finally:
        client.close()


def test_written_batches_are_on_disk_when_upsert_returns(tmp_path):
    uri = f"qdrant://{tmp_path}/q?collection=docs"
    with connect(uri) as target:
        target.create(TargetSpec("docs", DIM, "dot"))
        target.upsert(_batch(0, 1000))
        target.upsert(_batch(1000, 500))
        target.delete([3, 1200])
        # Copy the directory while this client is still open: no close-time flush can help.
        shutil.copytree(tmp_path / "q", tmp_path / "copy")
    assert _on_disk(tmp_path / "copy") == set(range(1500)) - {3, 1200}
    with connect(f"qdrant://{tmp_path}/copy?collection=docs") as copy:
        back = copy.fetch([7, 1499])
    np.testing.assert_allclose(back.vectors[0], _batch(0, 1000).vectors[7], rtol=1e-6)
    assert back.metadata[1] == {"i": 1499}


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/tests/connectors/qdrant")
    from test_qdrant_commit import _batch, DIM
    from vmkit import TargetSpec, connect
    import vmkit.connectors.qdrant.write as q
    from qdrant_client.local.persistence import CollectionPersistence
    if sys.argv[3] == "per-point":  # the engine's own commits, to show what the test tells apart
        import contextlib
        q.one_commit = lambda client, collection: contextlib.nullcontext()
    target = connect(f"qdrant://{sys.argv[2]}?collection=docs").__enter__()
    target.create(TargetSpec("docs", DIM, "dot"))
    target.upsert(_batch(0, 1000))
    persist, seen = CollectionPersistence.persist, [0]
    def persist_then_hang(self, point):
        persist(self, point)
        seen[0] += 1
        if seen[0] == 400:  # 400 points of the second batch are in: get killed here
            print("mid-batch", flush=True)
            time.sleep(600)
    CollectionPersistence.persist = persist_then_hang
    target.upsert(_batch(1000, 1000))
""")


@pytest.mark.parametrize("commits, survivors", [("one", 1000), ("per-point", 1400)])
def test_process_killed_mid_batch_leaves_whole_batches(tmp_path, commits, survivors):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(tmp_path / "q"), commits],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "mid-batch"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    held = _on_disk(tmp_path / "q")
    assert len(held) == survivors
    assert set(range(1000)) <= held


def test_a_write_failing_part_way_keeps_what_the_engine_persisted(tmp_path, monkeypatch):
    from qdrant_client.local.persistence import CollectionPersistence

    client = qdrant_client.QdrantClient(path=str(tmp_path / "q"))
    models = qdrant_client.models
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Dot"))
    persist, calls = CollectionPersistence.persist, [0]

    def disk_full_at_61(self, point):
        calls[0] += 1
        if calls[0] == 61:
            raise OSError("disk full")
        persist(self, point)

    monkeypatch.setattr(CollectionPersistence, "persist", disk_full_at_61)
    with pytest.raises(OSError, match="disk full"):
        with one_commit(client, "docs"):
            client.upload_points("docs", points=[models.PointStruct(id=i, vector=[0.5] * DIM)
                                                 for i in range(100)], wait=True)
    client.close()
    # As with the engine's per-point commits: the 60 points persisted before the failure stay.
    assert _on_disk(tmp_path / "q") == set(range(60))


def test_without_engine_internals_writes_commit_as_the_engine_does(tmp_path):
    with connect("qdrant:///:memory:?collection=mem_commit") as target:  # no SQLite at all
        target.create(TargetSpec("mem_commit", DIM, "dot"))
        target.upsert(_batch(0, 10))
        assert target.count() == 10

    class NotTheEngine:
        written = 0

        def upload_points(self, collection: str, points: list) -> None:
            self.written += len(points)

    other = NotTheEngine()
    with one_commit(other, "docs"):
        other.upload_points("docs", [1, 2])
    assert other.written == 2
