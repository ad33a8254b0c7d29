"""Weaviate (the emulator, multi-tenant) read by two Dask worker processes: each tenant, and a
big tenant's uuid ranges, as partitions; equal at the end with full verification passed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("weaviate")

from copying import fill, rich_records  # noqa: E402
from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402
from engines.postgres import PgServer, query  # noqa: E402

from vmkit import Migration  # noqa: E402
from vmkit.state.partitions import rows  # noqa: E402

SIZES = {"big": 1500, "mid": 300, "small": 200}


def test_weaviate_tenants_and_uuid_ranges_on_dask(dask_client: Any, weaviate_emu: WeaviateEmulator,
                                                  pg_server: PgServer, pg_db: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    src = weaviate_emu.uri("Docs", multi_tenancy="true")
    fill(src, "cosine", [rich_records([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)],
                                      ns=t, seed=i) for i, (t, n) in enumerate(SIZES.items())])
    mig = Migration.create(src, pg_server.uri(pg_db, "dst"), state=tmp_path / "state.db",
                           batch_size=100, partitions=8, namespace_policy="field", chunk_batches=2)
    parts = mig.plan.partitions
    assert [p["namespace"] for p in parts].count("big") == 6 and len(parts) == 8
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert mig.store.query("SELECT count(*) FROM events WHERE migration_id=? AND event='verified on the workers'",
                           mig.id)[0][0] == 1
    total = sum(SIZES.values())
    assert rec.records_read == rec.records_written == total
    ledger = rows(mig.store, mig.id)
    big = [p.records_read for p in ledger if p.spec["namespace"] == "big"]
    assert sum(big) == SIZES["big"] and all(big)  # every range held some of the tenant
    assert query(pg_server, pg_db, "SELECT count(*) FROM dst")[0][0] == total
