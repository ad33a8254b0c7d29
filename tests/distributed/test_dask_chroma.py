"""A collection on a real Chroma server (which any number of processes may read) copied by two
Dask workers, each reading position ranges of it: equal at the end, verified on the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engines.postgres import PgServer, query

from vmkit import Migration
from vmkit.state.partitions import rows


def test_chroma_server_to_pgvector_in_8_position_ranges(dask_client: Any, chroma_server: str, pg_server: PgServer,
                                                        pg_db: str, tmp_path: Path) -> None:
    pytest.importorskip("chromadb")
    n = 2_000
    source = f"chroma://{chroma_server}/src"
    assert Migration.create(f"synthetic://s?n={n}&dim=16", source, state=tmp_path / "load.db",
                            batch_size=500).run().state == "completed"
    mig = Migration.create(source, pg_server.uri(pg_db, "docs"), state=tmp_path / "state.db",
                           batch_size=100, partitions=8, chunk_batches=2)
    assert len(mig.plan.partitions) == 8
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert mig.store.query("SELECT count(*) FROM events WHERE migration_id=? AND event='verified on the workers'",
                           mig.id)[0][0] == 1
    assert rec.records_read == rec.records_written == n
    parts = rows(mig.store, mig.id)
    assert len(parts) == 8 and all(p.scan_done and p.records_read == n // 8 for p in parts)
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == n
