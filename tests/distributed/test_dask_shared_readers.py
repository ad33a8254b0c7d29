"""Stores several processes can read at once (a LanceDB table, a Parquet directory, a real
Chroma server's collection) copied by two Dask workers in 8 partitions of their own kind:
equal at the end, verified on the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engines.postgres import PgServer, query

from vmkit import Migration
from vmkit.state.partitions import rows

N = 3_000


def _copy_in_8_partitions(source: str, dask_client: Any, pg_server: PgServer, pg_db: str,
                          tmp_path: Path) -> list[Any]:
    assert Migration.create(f"synthetic://s?n={N}&dim=16", source, state=tmp_path / "load.db",
                            batch_size=250).run().state == "completed"
    mig = Migration.create(source, pg_server.uri(pg_db, "docs"), state=tmp_path / "state.db",
                           batch_size=100, partitions=8, chunk_batches=2)
    assert len(mig.plan.partitions) == 8
    status = mig.run(executor="dask", cluster=dask_client)
    rec = mig.store.get(mig.id)
    assert (rec.state, rec.verification) == ("completed", "passed"), status
    assert mig.store.query("SELECT count(*) FROM events WHERE migration_id=? AND event='verified on the workers'",
                           mig.id)[0][0] == 1
    assert rec.records_read == rec.records_written == N
    parts = rows(mig.store, mig.id)
    assert len(parts) == 8 and all(p.scan_done for p in parts)
    assert sum(p.records_read for p in parts) == N
    assert all(p.records_read > 0 for p in parts)  # the partitions split the source, none empty
    assert query(pg_server, pg_db, "SELECT count(*) FROM docs")[0][0] == N
    return parts


def test_lancedb_to_pgvector_in_8_id_ranges(dask_client: Any, pg_server: PgServer, pg_db: str,
                                            tmp_path: Path) -> None:
    pytest.importorskip("lancedb")
    _copy_in_8_partitions(f"lancedb://{tmp_path}/lance?table=src", dask_client, pg_server, pg_db, tmp_path)


def test_parquet_to_pgvector_in_8_runs_of_parts(dask_client: Any, pg_server: PgServer, pg_db: str,
                                                tmp_path: Path) -> None:
    _copy_in_8_partitions(f"parquet://{tmp_path}/pq", dask_client, pg_server, pg_db, tmp_path)


def test_chroma_server_to_pgvector_in_8_position_ranges(dask_client: Any, chroma_server: str, pg_server: PgServer,
                                                        pg_db: str, tmp_path: Path) -> None:
    pytest.importorskip("chromadb")
    parts = _copy_in_8_partitions(f"chroma://{chroma_server}/src", dask_client, pg_server, pg_db, tmp_path)
    assert all(p.records_read == N // 8 for p in parts)  # the count cut evenly
