"""Pinecone (the emulator) read by two Dask worker processes: namespaces and a big namespace's
id prefixes as partitions, equal at the end, and the index's rate limits shared so that two
workers together never pass them (the emulator answers 429 past a limit and counts it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dask_env import set_worker_env
from emulators.pinecone_emulator import PineconeEmulator
from engines.postgres import PgServer, query

from vmkit import Migration
from vmkit.core.errors import ConfigError
from vmkit.state.partitions import rows

SMALL, BIG, LIMIT, LISTS = 100, 2000, 10, 40  # records per small namespace, in the big one; fetches, lists a second


def _seed(emu: PineconeEmulator) -> int:
    emu.create_index("src", 8, "cosine")
    rng = np.random.default_rng(3)
    total = 0
    for k in range(6):
        total += emu.seed("src", [(f"s{k}-{i}", rng.standard_normal(8), {"k": k, "i": i}, None)
                                  for i in range(SMALL)], namespace=f"ns{k}")
    # ids whose first characters part them, so the big namespace splits into id prefixes
    total += emu.seed("src", [(f"{chr(100 + i % 27)}{i:05d}", rng.standard_normal(8), {"i": i}, None)
                              for i in range(BIG)], namespace="big")
    return total


def test_pinecone_partitions_under_a_shared_rate_limit(dask_client: Any, pinecone_emu: PineconeEmulator,
                                                       pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    set_worker_env(dask_client, {"PINECONE_CONTROLLER_HOST": pinecone_emu.url,
                                 "PINECONE_API_KEY": pinecone_emu.api_key})
    n = _seed(pinecone_emu)
    pinecone_emu.rates.limits.update(fetch=LIMIT, list=LISTS)
    source = f"pinecone://src?rate_limits=fetch:{LIMIT},list:{LISTS}"
    mig = Migration.create(source, pg_server.uri(pg_db, "dst"), state=tmp_path / "state.db",
                           batch_size=100, partitions=8, namespace_policy="field", chunk_batches=2)
    parts = mig.plan.partitions
    assert len(parts) >= 8
    big = [p for p in parts if p["namespace"] == "big"]
    assert len(big) > 1 and all(p["lower"] for p in big)  # split by id prefix
    copy_from = len(pinecone_emu.log)
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert mig.store.query("SELECT count(*) FROM events WHERE migration_id=? AND event='verified on the workers'",
                           mig.id)[0][0] == 1
    assert rec.records_read == rec.records_written == n
    assert all(p.scan_done for p in rows(mig.store, mig.id))
    assert query(pg_server, pg_db, "SELECT count(*) FROM dst")[0][0] == n
    # the limit was never passed, and it was binding: in some second the two workers together
    # fetched more than one worker's share, so they ran at once
    assert pinecone_emu.rates.refused == 0
    fetches = sorted(r.started for r in pinecone_emu.log[copy_from:] if r.op == "fetch")
    busiest = max(sum(1 for t in fetches if s <= t < s + 1.0) for s in fetches)
    share = int(LIMIT * 0.8) // 2  # each worker's (pinecone/connector.py share_limits)
    assert share < busiest <= LIMIT, busiest


def test_workers_that_cannot_reach_the_source(dask_client: Any, pinecone_emu: PineconeEmulator,
                                              pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    """Workers whose environment sends them to a dead host, or that lack the API key: one line
    naming the worker, before any chunk; the migration resumes once the workers are fixed."""
    good = {"PINECONE_CONTROLLER_HOST": pinecone_emu.url, "PINECONE_API_KEY": pinecone_emu.api_key}
    pinecone_emu.create_index("src", 8, "cosine")
    rng = np.random.default_rng(4)
    n = pinecone_emu.seed("src", [(f"r{i}", rng.standard_normal(8), {"i": i}, None) for i in range(300)])
    mig = Migration.create("pinecone://src", pg_server.uri(pg_db, "dst"), state=tmp_path / "state.db",
                           batch_size=100, partitions=4, namespace_policy="field", chunk_batches=2)
    for broken, why in (({**good, "PINECONE_API_KEY": " "}, "no Pinecone API key"),
                        ({**good, "PINECONE_CONTROLLER_HOST": "http://127.0.0.1:9"}, "")):
        set_worker_env(dask_client, broken)
        with pytest.raises(ConfigError, match=f"^Dask worker tcp://[0-9.:]+ cannot open the migration's stores: .*{why}"):
            mig.run(executor="dask", cluster=dask_client)
        assert mig.store.get(mig.id).records_read == 0
    set_worker_env(dask_client, good)
    status = mig.run(executor="dask", cluster=dask_client)
    assert (status.state, status.verification) == ("completed", "passed"), status
    assert status.records_read == n
