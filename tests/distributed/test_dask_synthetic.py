"""A migration split into partitions and run on a LocalCluster of two processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.postgres import PgServer, query

from vmkit import Migration
from vmkit.state.partitions import rows


def test_synthetic_to_pgvector_in_8_partitions(dask_client: Any, pg_server: PgServer, pg_db: str,
                                               tmp_path: Path) -> None:
    n = 5_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=16", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=200, partitions=8)
    assert len(mig.plan.partitions) == 8
    assert "partitions: 8" in str(mig.plan)
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert rec.state == "completed", status
    assert rec.verification == "passed"
    assert rec.records_read == rec.records_written == n
    parts = rows(mig.store, mig.id)
    assert len(parts) == 8 and all(p.scan_done for p in parts)
    assert sum(p.records_read for p in parts) == n
    # every batch row is tagged with its partition, seqs 1..batches without gaps
    tagged = mig.store.query("SELECT count(*), min(seq), max(seq) FROM partition_batches WHERE migration_id=?", mig.id)
    assert tagged[0] == (rec.batches, 1, rec.batches)
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == n
