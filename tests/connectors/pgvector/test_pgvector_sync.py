"""A zero-downtime sync into pgvector builds the vector index once its bulk copy is done, as a
plain migration does (``Connector.finish_load``), and keeps it through catch-up and verification."""

from __future__ import annotations

import numpy as np
from engines.postgres import query

from vmkit import TargetSpec, connect
from vmkit.core.records import RecordBatch
from vmkit.sync.engine import Sync


def test_a_sync_builds_the_index_after_its_bulk_copy(pg_server, pg_db, tmp_path):
    with connect("memory://sync-src") as src:
        src.create(TargetSpec("src", 4, "cosine"))
        src.upsert(RecordBatch([f"r{i}" for i in range(300)], np.random.default_rng(2).standard_normal((300, 4)),
                               [{"i": i} for i in range(300)]))
    sync = Sync.create("memory://sync-src", pg_server.uri(pg_db, "synced"), migration_id="s",
                       state=tmp_path / "s.db", batch_size=100)
    hnsw = "SELECT count(*) FROM pg_indexes WHERE tablename = 'synced' AND indexdef LIKE '%hnsw%'"
    sync.bulk_copy(max_chunks=2)
    assert query(pg_server, pg_db, hnsw) == [(0,)]  # not while the bulk copy runs
    sync.bulk_copy()
    assert query(pg_server, pg_db, hnsw) == [(1,)]
    sync.catch_up()
    assert sync.verify().phase == "verified"
    assert query(pg_server, pg_db, "SELECT count(*) FROM synced") == [(300,)]
