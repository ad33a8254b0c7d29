"""Qdrant (embedded) <-> pgvector (a real PostgreSQL) through the real CLI: a child `vmkit
migrate` into pgvector is SIGKILLed after its first committed batch, resumed, fully verified,
and leaves the HNSW index built; pgvector -> Qdrant gives back the original records; tables
vmkit cannot read or write are plan errors before any write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("psycopg")
pytest.importorskip("qdrant_client")

from copying import scratch_dir
from engines.postgres import query, sql
from resilience.helpers import cli, contents, resume, start_and_kill_after_a_batch

from vmkit import Migration
from vmkit.connectors.datasets import fill
from vmkit.core.errors import PlanError
from vmkit.state.store import StateStore

N, DIM, CLI_BATCH = 6000, 16, 500
Contents = dict[object, tuple[bytes, object]]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from scratch_dir(tmp_path_factory, "vmkit-pg-")


@pytest.fixture(scope="module")
def qdrant_src(base: Path) -> str:
    uri = f"qdrant://{base}/q?collection=docs"
    fill(uri, N, DIM)  # mixed int and UUID ids, nested/null/list payloads
    return uri


@pytest.fixture(scope="module")
def original(qdrant_src: str) -> Contents:
    return contents(qdrant_src)


@pytest.fixture(scope="module")
def pg_module_db(pg_server) -> Iterator[str]:
    name = "mig_" + os.urandom(4).hex()
    sql(pg_server, "postgres", f"CREATE DATABASE {name}")
    sql(pg_server, name, "CREATE EXTENSION vector")
    yield name
    sql(pg_server, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _finished(state: Path, mid: str) -> tuple[str, str, int, int]:
    store = StateStore(state)
    try:
        rec = store.get(mid)
        return rec.state, rec.verification, rec.batches, rec.records_read
    finally:
        store.close()




def test_qdrant_to_pgvector_killed_and_resumed_then_indexed(base, qdrant_src, original, pg_server, pg_module_db):
    target = pg_server.uri(pg_module_db, "docs")
    state, mid = base / "q2p.db", "q2p"
    done = start_and_kill_after_a_batch(qdrant_src, target, mid, state, CLI_BATCH, timeout=120)
    assert 1 <= done < N // CLI_BATCH, f"the kill landed after {done} batches"
    assert query(pg_server, pg_module_db, "SELECT count(*) FROM pg_indexes WHERE tablename = 'docs' "
                                          "AND indexdef LIKE '%hnsw%'") == [(0,)]  # not before the load ends
    code, out = resume(mid, state)
    assert code == 0, out
    st, verification, batches, read = _finished(state, mid)
    assert (st, verification) == ("completed", "passed") and batches > done and read == N
    got = contents(target)
    assert len(got) == N
    for rid, (vec, meta) in original.items():  # int ids travel as text, marked for the way back
        marked = {**meta, "_vmkit_id_kind": "uint"} if isinstance(rid, int) else meta
        assert got[str(rid)] == (vec, marked), rid
    defs = query(pg_server, pg_module_db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'docs' "
                                          "AND indexdef LIKE '%hnsw%'")
    assert len(defs) == 1 and "(embedding vector_cosine_ops)" in defs[0][0]


def test_pgvector_to_qdrant_gives_back_the_original(base, qdrant_src, original, pg_server, pg_module_db):
    source = pg_server.uri(pg_module_db, "docs2")
    m = Migration.create(qdrant_src, source, migration_id="first", state=base / "first.db", batch_size=1000)
    assert m.run().state == "completed"
    target = f"qdrant://{base}/back?collection=docs"
    state = base / "p2q.db"
    run = cli(["migrate", "start", "--source", source, "--target", target, "--id", "p2q",
               "--batch-size", str(CLI_BATCH), "--no-progress"], state)
    out = run.communicate(timeout=600)[0].decode()
    assert run.returncode == 0, out
    assert _finished(state, "p2q")[:2] == ("completed", "passed")
    back = contents(target)
    assert back.keys() == original.keys() and {type(k) for k in back} == {int, str}  # ints are ints again
    for rid, (vec, meta) in original.items():
        got_vec, got_meta = back[rid]
        assert got_meta == meta, rid
        np.testing.assert_array_equal(np.frombuffer(got_vec, np.float32), np.frombuffer(vec, np.float32))


@pytest.mark.parametrize("ddl, message", [
    ("CREATE TABLE src (id int, v vector(16))", "has no primary key"),
    ("CREATE TABLE src (id int PRIMARY KEY, v vector(16), shape polygon)", "column 'shape' has type polygon"),
])
def test_sources_vmkit_cannot_read_stop_before_any_write(base, pg_server, pg_db, ddl, message):
    sql(pg_server, pg_db, ddl, "INSERT INTO src (id, v) VALUES (1, array_fill(0.5, ARRAY[16])::vector)")
    target = f"qdrant://{base}/never_{pg_db}?collection=c"
    run = cli(["migrate", "start", "--source", pg_server.uri(pg_db, "src", metric="dot"), "--target", target,
               "--id", "bad", "--no-progress"], base / f"bad_{pg_db}.db")
    out = run.communicate(timeout=120)[0].decode()
    assert run.returncode != 0 and message in out, out
    assert not (base / f"never_{pg_db}").exists()  # the target was never opened for writing


def test_a_target_table_of_another_dimension_is_a_plan_error_before_any_write(base, qdrant_src, pg_server, pg_db):
    sql(pg_server, pg_db, "CREATE TABLE t (id text PRIMARY KEY, embedding vector(8), metadata jsonb)",
        "CREATE INDEX ON t USING hnsw (embedding vector_cosine_ops)")
    with pytest.raises(PlanError, match="dimension 8, source 16"):
        Migration.create(qdrant_src, pg_server.uri(pg_db, "t"), migration_id="dim", state=base / f"dim_{pg_db}.db")
    assert query(pg_server, pg_db, "SELECT count(*) FROM t") == [(0,)]


def test_typed_columns_from_the_plan_verified(base, qdrant_src, pg_server, pg_module_db):
    target = pg_server.uri(pg_module_db, "typed", columns="typed", index="ivfflat")
    m = Migration.create(qdrant_src, target, migration_id="typed", state=base / "typed.db", batch_size=1000)
    assert any("null" in w.message for w in m.plan.warnings)  # typed columns keep no nulls: the plan says so
    st = m.run()
    assert (st.state, st.verification) == ("completed", "passed"), str(st)
    types = dict(query(pg_server, pg_module_db, "SELECT column_name, data_type FROM information_schema.columns "
                                                "WHERE table_name = 'typed'"))
    assert {k: types[k] for k in ("title", "views", "score", "published", "tags", "source")} == {
        "title": "text", "views": "bigint", "score": "numeric", "published": "boolean", "tags": "jsonb",
        "source": "jsonb"}
    assert query(pg_server, pg_module_db, "SELECT count(*) FROM pg_indexes WHERE tablename = 'typed' "
                                          "AND indexdef LIKE '%ivfflat (embedding vector_cosine_ops)%'") == [(1,)]


def test_a_negative_key_is_dead_lettered_naming_the_record(base, pg_server, pg_db):
    sql(pg_server, pg_db, "CREATE TABLE neg (id bigint PRIMARY KEY, v vector(2), metadata jsonb)",
        "INSERT INTO neg SELECT i, ARRAY[i, 1]::vector, '{}' FROM generate_series(0, 299) i",
        "INSERT INTO neg VALUES (-5, '[1,1]', '{}')")
    m = Migration.create(pg_server.uri(pg_db, "neg", metric="dot"), "memory://neg", migration_id="neg",
                         state=base / f"neg_{pg_db}.db")
    st = m.run()
    assert (st.records_read, st.records_written) == (301, 300), str(st)
    rows = m.store.query("SELECT record_id, field FROM rejections WHERE migration_id = ?", "neg")
    assert [(str(r[0]), r[1]) for r in rows] == [("-5", "id")]
