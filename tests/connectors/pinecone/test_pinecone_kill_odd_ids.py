"""Pinecone -> Pinecone (both on the emulator, in this process) through the real CLI in a
child process, SIGKILLed mid-way and resumed, with ids and a namespace holding space, ``+``,
``%``, ``&`` and ``#``: every one arrives, counts equal, full verification passes.

The emulator reads query strings as the service does (``+`` a plus, ``%20`` a space), so
before vmkit encoded its fetch and list requests itself, the source namespace with a space
was "not found" and the ids with a space came back absent (or as another record)."""

from __future__ import annotations

import numpy as np
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator
from resilience.helpers import cli, kill9, max_acked, wait_for_ack

from vmkit.state.store import StateStore

pytest.importorskip("pinecone")

DIM, PER_NS = 8, 600
SPACES = ("", "ns +%&# x", "plain")
ODD = (" ", "+", "%", "&", "#", " a+b%c&d#e", "%20", "")


def _ids(ns: str) -> list[str]:
    """Ids with the odd characters inside, at the end and at the start."""
    return [f"{ODD[i % len(ODD)]}{i:04d}" if i % 3 == 0 else f"{ns[:2] or 'd'}{i:04d}{ODD[i % len(ODD)]}"
            for i in range(PER_NS)]


def test_odd_ids_and_namespace_survive_a_kill_and_resume(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    with PineconeEmulator(api_key=EMU_KEY, seed=3) as emu:
        emu.create_index("src", DIM, "cosine")
        for ns in SPACES:
            vecs = rng.standard_normal((PER_NS, DIM)).astype(np.float32) + 0.1
            emu.seed("src", [(rid, vecs[i], {"i": i, "ns": ns}, None)
                             for i, rid in enumerate(_ids(ns))], namespace=ns)
        env = {"PINECONE_CONTROLLER_HOST": emu.url, "PINECONE_API_KEY": EMU_KEY}
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.setenv("PINECONE_API_KEY", EMU_KEY)
        state, log = tmp_path / "state.db", tmp_path / "run.log"
        proc = cli(["migrate", "start", "--source", "pinecone://src", "--target", "pinecone://dst",
                    "--id", "odd", "--batch-size", "50", "--no-progress"], state, log, env)
        assert wait_for_ack(proc, log, above=3, timeout=120)
        assert kill9(proc) == -9
        store = StateStore(state)
        done = store.get("odd").batches
        total_batches = len(SPACES) * PER_NS // 50
        assert 0 < done < total_batches and max_acked(log) - done <= 1
        store.close()

        resume = cli(["migrate", "resume", "--id", "odd", "--no-progress"], state,
                     tmp_path / "r.log", env)
        out = resume.communicate(timeout=300)[0].decode()
        assert resume.returncode == 0, out
        store = StateStore(state)
        rec = store.get("odd")
        assert rec.state == "completed" and rec.verification == "passed", out
        assert rec.records_read == rec.records_written == len(SPACES) * PER_NS
        assert store.query("SELECT count(*) FROM rejections")[0][0] == 0
        seqs = [r[0] for r in store.query("SELECT seq FROM batches WHERE migration_id='odd' ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))  # the batches before the kill were kept
        store.close()

        dst = emu.indexes["dst"]
        for ns in SPACES:  # every id, in its own namespace, with its values and metadata
            rows = dst.ns(ns).rows  # type: ignore[union-attr]
            assert sorted(rows) == sorted(_ids(ns)), ns
            src = emu.indexes["src"].ns(ns).rows  # type: ignore[union-attr]
            assert all(np.array_equal(rows[k].values, src[k].values) and
                       rows[k].metadata == src[k].metadata for k in rows)
        assert set(dst.namespaces) == set(SPACES)
        # no source namespace was misread as missing
        assert [(r.op, r.namespace) for r in emu.requests(status=404) if r.plane == "src"] == []
