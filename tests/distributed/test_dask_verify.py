"""Full verification on the workers, partition by partition, merged: it passes on an equal
copy and catches a deleted record, a vector scaled by 1.01, a metadata type change; a record no
source record maps to (an extra) makes it hand over to the one-process verification, which
names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.postgres import PgServer, sql

from vmkit import Migration
from vmkit.migration.distributed import verify_distributed


def _events(mig: Migration) -> list[str]:
    return [e for (e,) in mig.store.query("SELECT event FROM events WHERE migration_id=?", mig.id)]


def test_verified_on_the_workers_and_corruption_found(dask_client: Any, pg_server: PgServer, pg_db: str,
                                                      tmp_path: Path) -> None:
    n = 4_000
    mig = Migration.create(f"synthetic://s?n={n}&dim=8", pg_server.uri(pg_db, "docs"),
                           state=tmp_path / "state.db", batch_size=200, partitions=8, chunk_batches=2)
    status = mig.run(executor="dask", cluster=dask_client)
    assert (status.state, status.verification) == ("completed", "passed"), status
    assert "verified on the workers" in _events(mig)
    detail = mig.store.get(mig.id).verification_detail or {}
    assert (detail["matched"], detail["target_records"], detail["source_records"]) == (n, n, n)
    assert detail["namespace_counts"][""] == {"read": n, "source": n, "source_before": n}

    sql(pg_server, pg_db,
        "DELETE FROM docs WHERE id = '5'",
        "UPDATE docs SET embedding = (SELECT array_agg(x * 1.01 ORDER BY o) FROM unnest(embedding::real[])"
        " WITH ORDINALITY AS u(x, o))::vector WHERE id = '1234'",
        "UPDATE docs SET metadata = jsonb_set(metadata, '{group}', to_jsonb((metadata->>'group')::text))"
        " WHERE id = '3999'")
    result = verify_distributed(mig, dask_client)
    assert result is not None and not result.passed
    assert [str(rid) for _, rid in result.missing] == ["5"]
    why = {str(rid): reason for (_, rid), reason in result.mismatched}
    assert set(why) == {"1234", "3999"}
    assert "vector differs" in why["1234"] and "metadata 'group' differs" in why["3999"]
    assert result.matched == n - 3

    sql(pg_server, pg_db, "INSERT INTO docs (id, embedding, metadata) SELECT 'extra-1', embedding, metadata"
                          " FROM docs WHERE id = '7'")
    assert verify_distributed(mig, dask_client) is None  # an extra: only a target scan names it
    assert ("", "extra-1") in mig.verify().extra
