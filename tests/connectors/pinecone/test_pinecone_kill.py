"""Pinecone (emulator, in this process) -> Qdrant (embedded) through the real CLI in a child
process, SIGKILLed mid-way and resumed: 21,000 records, three namespaces, sparse values."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator
from resilience.helpers import cli, contents, kill9, max_acked, wait_for_ack

from vmkit.state.store import StateStore

pytest.importorskip("pinecone")
SPACES, PER_NS, DIM = ("", "alpha", "beta"), 7000, 16


@pytest.fixture
def work():
    """tmpfs when there is one: embedded Qdrant commits SQLite once per point."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="vmkit-pk-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_kill_and_resume_pinecone_to_qdrant(tmp_path, monkeypatch, work):
    rng = np.random.default_rng(3)
    with PineconeEmulator(api_key=EMU_KEY, seed=11) as emu:
        emu.create_index("src", DIM, "dotproduct")
        for ns in SPACES:
            vecs = rng.standard_normal((PER_NS, DIM)).astype(np.float32)
            emu.seed("src", [(f"{ns or 'd'}#{i} &x", vecs[i], {"i": i, "ns": ns},
                              ([i, i + 7], [0.5, 1.5]) if i % 3 else None) for i in range(PER_NS)],
                     namespace=ns)
        env = {"PINECONE_CONTROLLER_HOST": emu.url, "PINECONE_API_KEY": EMU_KEY}
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.setenv("PINECONE_API_KEY", EMU_KEY)
        target = f"qdrant://{work}/dst?collection=docs"
        state, log = tmp_path / "state.db", tmp_path / "run.log"
        proc = cli(["migrate", "start", "--source", "pinecone://src", "--target", target,
                    "--id", "pk", "--batch-size", "1000", "--no-progress"], state, log, env)
        assert wait_for_ack(proc, log, above=3, timeout=300)
        assert kill9(proc) == -9
        store = StateStore(state)
        done = store.get("pk").batches
        assert 0 < done < 21 and max_acked(log) - done <= 1
        store.close()
        resume = cli(["migrate", "resume", "--id", "pk", "--no-progress"], state, tmp_path / "r.log", env)
        out = resume.communicate(timeout=600)[0].decode()
        assert resume.returncode == 0, out
        store = StateStore(state)
        rec = store.get("pk")
        assert rec.state == "completed" and rec.verification == "passed"
        assert rec.records_read == rec.records_written == 21_000
        # the batches done before the kill were not redone: the ledger continues from them
        seqs = [r[0] for r in store.query("SELECT seq FROM batches WHERE migration_id='pk' ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        got = contents(target)
        assert len(got) == 21_000
        assert {m["_vmkit_source_id"] for _, m in got.values()} >= {"d#0 &x", "alpha#6999 &x"}
