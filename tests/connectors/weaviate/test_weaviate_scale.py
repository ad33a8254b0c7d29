"""Issue 4 at scale: 20,000 records in two tenants, through the real CLI, SIGKILLed mid-way and
resumed (Pinecone -> Weaviate; Weaviate with two named vectors -> Qdrant); per-object failures;
property renames."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("pinecone")

from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator  # noqa: E402
from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402
from resilience.helpers import cli, kill9, max_acked, wait_for_ack  # noqa: E402

from vmkit import Migration, TargetSpec, connect  # noqa: E402
from vmkit.core.records import RecordBatch  # noqa: E402
from vmkit.state.store import StateStore  # noqa: E402

TENANTS, PER_TENANT, DIM = ("tenant-a", "tenant-b"), 10_000, 16


@pytest.fixture
def work():
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="vmkit-ws-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def kill_then_resume(source: str, target: str, tmp_path: Path, env: dict[str, str] | None = None) -> StateStore:
    state, log = tmp_path / "state.db", tmp_path / "run.log"
    proc = cli(["migrate", "start", "--source", source, "--target", target, "--id", "k",
                "--batch-size", "1000", "--no-progress"], state, log, env)
    assert wait_for_ack(proc, log, above=3, timeout=300)
    assert kill9(proc) == -9
    store = StateStore(state)
    done = store.get("k").batches
    assert 0 < done < 20 and max_acked(log) - done <= 1
    resume = cli(["migrate", "resume", "--id", "k", "--no-progress"], state, tmp_path / "r.log", env)
    out = resume.communicate(timeout=600)[0].decode()
    assert resume.returncode == 0, out
    rec = store.get("k")
    assert rec.state == "completed" and rec.verification == "passed", out
    assert rec.records_read == rec.records_written == len(TENANTS) * PER_TENANT
    return store


def test_pinecone_namespaces_to_weaviate_tenants_killed_and_resumed(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    with PineconeEmulator(api_key=EMU_KEY, seed=3) as pc, WeaviateEmulator() as wv:
        pc.create_index("src", DIM, "cosine")
        for ns in TENANTS:
            vecs = rng.standard_normal((PER_TENANT, DIM)).astype(np.float32)
            pc.seed("src", [(f"{ns}/{i}", vecs[i], {"i": i, "user-id": f"u{i % 50}"}, None)
                            for i in range(PER_TENANT)], namespace=ns)
        env = {"PINECONE_CONTROLLER_HOST": pc.url, "PINECONE_API_KEY": EMU_KEY}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        target = wv.uri("Docs", multi_tenancy="true")
        kill_then_resume("pinecone://src", target, tmp_path, env)
        with connect(target) as conn:
            assert conn.describe().namespaces == {t: PER_TENANT for t in TENANTS}
            one = conn.fetch([str(uuid.uuid5(uuid.UUID("6f1d2c3a-8a3e-5b7c-9d42-7a6b5c4d3e2f"),
                                             "s:tenant-b/7"))], "tenant-b")
            assert one.metadata[0]["user_id"] == "u7"  # renamed by the plan
            assert one.metadata[0]["_vmkit_source_id"] == "tenant-b/7"


def test_weaviate_tenants_with_two_named_vectors_to_qdrant_killed_and_resumed(tmp_path, work):
    rng = np.random.default_rng(5)
    spec = TargetSpec("Src", DIM, "dot", vector_name="text", extra_vectors={"image": {"dimension": 8, "metric": "cosine"}})
    kept: dict[str, np.ndarray] = {}
    with WeaviateEmulator() as wv:
        source = wv.uri("Src", multi_tenancy="true")
        with connect(source) as conn:
            conn.create(spec)
            for t in TENANTS:
                for start in range(0, PER_TENANT, 2000):
                    ids = [str(uuid.uuid4()) for _ in range(2000)]
                    image = rng.standard_normal((2000, 8)).astype(np.float32)
                    kept[ids[0]] = image[0]
                    conn.upsert(RecordBatch(ids, rng.standard_normal((2000, DIM)),
                                            [{"n": start + i, "tag": t} for i in range(2000)], namespace=t,
                                            named={"image": image}, vector_name="text"))
        target = f"qdrant://{work}/dst?collection=docs"
        store = kill_then_resume(source, target, tmp_path)
        assert store.rejected_count("k") == 0
    with connect(target) as conn:
        assert conn.count() == len(TENANTS) * PER_TENANT
        info = conn.describe()
        assert {info.vector_name, *info.extra_vectors} == {"text", "image"}
        found: dict[str, np.ndarray] = {}  # tenant-scoped ids became uuid5s: find them by origin
        cursor = None
        while True:
            batch, cursor = conn.scan(cursor, 5000)
            image = batch.dense_vectors()["image"]
            found.update((m["_vmkit_source_id"], image[i]) for i, m in enumerate(batch.metadata)
                         if m.get("_vmkit_source_id") in kept)
            if cursor is None:
                break
        assert found.keys() == kept.keys()
        for rid, want in kept.items():  # cosine: unit vectors (raw ones after a reopen)
            got = found[rid]
            assert np.allclose(got / np.linalg.norm(got), want / np.linalg.norm(want), atol=1e-6)


@pytest.mark.parametrize("transient", [True, False], ids=["transient", "invalid"])
def test_five_percent_object_failures(tmp_path, monkeypatch, transient):
    monkeypatch.setattr("weaviate.retry.time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    src = connect("memory://src")
    src.create(TargetSpec("src", DIM, "cosine"))
    src.upsert(RecordBatch([str(uuid.uuid4()) for _ in range(2000)],
                           np.random.default_rng(6).standard_normal((2000, DIM)),
                           [{"i": i} for i in range(2000)]))
    with WeaviateEmulator() as wv:
        wv.faults.object_fail_rate, wv.faults.object_fail_transient = 0.05, transient
        m = Migration.create("memory://src", wv.uri("Docs"), migration_id="f", state=tmp_path / "s.db",
                             batch_size=500, retry_initial_s=0.01)
        st = m.run()
        assert wv.faults.injected > 0
        assert st.state == "completed" and st.verification == "passed", str(st)
        assert st.balanced and st.records_read == 2000
        if transient:  # every object retried into place
            assert st.records_written == 2000 and st.records_rejected == 0
        else:  # refused objects dead-lettered, each with the server's reason
            assert st.records_rejected > 0 and st.records_written == 2000 - st.records_rejected
            reasons = m.store.query("SELECT reason FROM rejections WHERE migration_id='f'")
            assert all("refused by target" in r[0] for r in reasons)


def test_property_names_follow_the_documented_plan(tmp_path):
    src = connect("memory://src")
    src.create(TargetSpec("src", DIM, "cosine"))
    meta = {"user-id": 1, "1st": 2, "id": 3, "_additional": 4, "Name": "upper", "name": "lower", "ok": 5}
    ids = [str(uuid.uuid4()) for _ in range(20)]
    src.upsert(RecordBatch(ids, np.ones((20, DIM)), [dict(meta) for _ in ids]))
    with WeaviateEmulator() as wv:
        with connect(wv.uri("Docs")) as dst:
            from vmkit.planning.planner import plan

            p = plan(src, dst)
        assert p.renames == {"user-id": "user_id", "1st": "_1st", "id": "id_", "_additional": "_additional_",
                             "Name": "_Name"}
        st = Migration.create("memory://src", wv.uri("Docs"), migration_id="n", state=tmp_path / "s.db",
                              plan=p).run()
        assert st.state == "completed" and st.verification == "passed"
        with connect(wv.uri("Docs")) as dst:
            got = dst.fetch(ids[:1]).metadata[0]
        assert got == {"user_id": 1, "_1st": 2, "id_": 3, "_additional_": 4, "_Name": "upper",
                       "name": "lower", "ok": 5}
