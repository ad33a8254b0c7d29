"""The pgvector connector against a real PostgreSQL 18 + pgvector 0.8 (tests/engines/postgres.py):
source tables made by hand in plain SQL (every key and column type it reads), tables it
creates (jsonb or typed metadata), exact round trips, resumable scans, and the plan errors."""

from __future__ import annotations

import datetime
import decimal
import os
import uuid

import numpy as np
import pytest

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from engines.postgres import PG_PASSWORD, PW_ROLE, query, sql

from vmkit import TargetSpec, connect
from vmkit.core.errors import InvalidData, PlanError, SecretInURI, TerminalError
from vmkit.core.records import RecordBatch, SparseVector


def _vec(v) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def _scan_all(conn, limit, cursor=None):
    batches = []
    while True:
        b, cursor = conn.scan(cursor, limit)
        batches.append(b)
        if cursor is None:
            whole = RecordBatch.concat(batches)
            whole.rejected = [r for b in batches for r in b.rejected]
            return whole


def test_bigint_key_jsonb_metadata_and_metric_from_the_index(pg_server, pg_db):
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((5, 3)).astype(np.float32)
    sql(pg_server, pg_db, "CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3), metadata jsonb)",
        "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)",
        *[f"INSERT INTO items VALUES ({i * 10}, '{_vec(vecs[i])}', "
          f"'{{\"i\": {i}, \"big\": 123456789012345678901234567890, \"f\": 0.1, \"n\": null, \"x\": {{\"y\": [1, \"a\"]}}}}')"
          for i in range(5)])
    with connect(pg_server.uri(pg_db, "items")) as c:
        info = c.describe()
        assert (info.dimension, info.metric, info.count, info.sparse) == (3, "cosine", 5, False)
        assert c.capabilities.id_kinds == {"uint"}
        got = _scan_all(c, 2)
    assert got.ids == [0, 10, 20, 30, 40]
    np.testing.assert_array_equal(got.vectors, vecs)
    assert got.metadata[3] == {"i": 3, "big": 123456789012345678901234567890, "f": 0.1, "n": None,
                               "x": {"y": [1, "a"]}}


def test_text_keys_with_odd_unicode_scan_in_byte_order_and_resume_in_a_new_connector(pg_server, pg_db):
    ids = ["a", "B", "é", "e\u0301", "日本", "😀", "z z", "", "\u00a0", "a" * 300, "Ω", "ǅ", "ß", "SS", "ﬀ"]
    ids.remove("")  # PostgreSQL text keys may be empty; vmkit ids may not (tested apart)
    sql(pg_server, pg_db, "CREATE TABLE docs (key text PRIMARY KEY, v vector(2), metadata jsonb)",
        *[f"INSERT INTO docs VALUES ({_lit(k)}, '[{n},1]', '{{}}')" for n, k in enumerate(ids)])
    uri = pg_server.uri(pg_db, "docs", metric="euclidean")
    with connect(uri) as c:
        first, cursor = c.scan(None, 4)
    seen = list(first.ids)
    while cursor is not None:  # a fresh connector per page, as after a restart
        with connect(uri) as c:
            b, cursor = c.scan(cursor, 4)
        seen += b.ids
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    assert [s.encode() for s in seen] == sorted(s.encode() for s in ids)  # C.UTF-8: bytewise


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def test_uuid_key_halfvec_widened_exactly_sparsevec_and_two_vector_columns(pg_server, pg_db):
    ids = sorted(str(uuid.UUID(int=i * 7919 + 1)) for i in range(4))
    sql(pg_server, pg_db,
        "CREATE TABLE m (id uuid PRIMARY KEY, title vector(2), body halfvec(3), sp sparsevec(100), metadata jsonb)",
        "CREATE INDEX ON m USING hnsw (title vector_ip_ops)",
        "CREATE INDEX ON m USING hnsw (body halfvec_l2_ops)",
        *[f"INSERT INTO m VALUES ('{u}', '[{i},0.5]', '[0.1,{i}.25,-3]', '{{{i + 1}:0.5,{i + 50}:2}}/100', '{{\"k\": {i}}}')"
          for i, u in enumerate(ids)])
    with connect(pg_server.uri(pg_db, "m")) as c:
        info = c.describe()
        assert c.capabilities.id_kinds == {"uuid"}
        got = _scan_all(c, 3)
        fetched = c.fetch([ids[2], "not-a-uuid", str(uuid.uuid4())])
    assert (info.vector_name, info.dimension, info.metric) == ("body", 3, "euclidean")
    assert info.extra_vectors == {"title": {"dimension": 2, "metric": "dot"}} and info.sparse
    assert got.ids == ids and got.vector_name == "body"
    np.testing.assert_array_equal(got.vectors[1], np.array([0.1, 1.25, -3], np.float16).astype(np.float32))
    np.testing.assert_array_equal(got.named["title"][3], [3, 0.5])
    assert got.sparse[2] == SparseVector.of([2, 51], [0.5, 2.0])  # pgvector text is 1-based
    assert fetched.ids == [ids[2]] and fetched.metadata == [{"k": 2}]


def test_typed_columns_read_as_metadata_of_their_types(pg_server, pg_db):
    sql(pg_server, pg_db, """CREATE TABLE t (id int PRIMARY KEY, v vector(1), b bool, s smallint, i int, g bigint,
        r real, d double precision, n numeric, nf numeric(10,2), tx text, vc varchar(5), dt date, ts timestamp,
        tz timestamptz, j json, jb jsonb, ai int[], at text[])""",
        """INSERT INTO t VALUES (1, '[1]', true, -3, 7, 9007199254740993, 0.5, 0.1, 123456789012345678901234567890,
        2.50, 'x', 'héllo', '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02',
        '{"a": [1, 2]}', '{"b": null}', '{1,NULL,3}', '{"p","q"}')""",
        "INSERT INTO t (id, v) VALUES (2, '[2]')")
    with connect(pg_server.uri(pg_db, "t", metric="dot")) as c:
        assert not c.capabilities.metadata_null  # a NULL column is an absent key
        got = _scan_all(c, 10)
    assert got.metadata[1] == {}
    assert got.metadata[0] == {
        "b": True, "s": -3, "i": 7, "g": 9007199254740993, "r": 0.5, "d": 0.1, "n": 123456789012345678901234567890,
        "nf": 2.5, "tx": "x", "vc": "héllo", "dt": datetime.date(2024, 2, 29),
        "ts": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "tz": datetime.datetime(2024, 1, 2, 1, 4, 5, tzinfo=datetime.timezone.utc),
        "j": {"a": [1, 2]}, "jb": {"b": None}, "ai": [1, None, 3], "at": ["p", "q"]}


@pytest.mark.parametrize("ddl, problem", [
    ("CREATE TABLE bad (id int, v vector(2))", "table public.bad has no primary key"),
    ("CREATE TABLE bad (a int, b int, v vector(2), PRIMARY KEY (a, b))", "composite primary key (a, b)"),
    ("CREATE TABLE bad (id int PRIMARY KEY, v vector(2), loc point)", "column 'loc' has type point"),
    ("CREATE TABLE bad (id int PRIMARY KEY, name text)", "no vector or halfvec column"),
    ("CREATE TABLE bad (id float8 PRIMARY KEY, v vector(2))", "primary key column 'id' is of type float8"),
    ("CREATE TABLE bad (id int PRIMARY KEY, v vector(2))", "vector column 'v' has no index"),
])
def test_tables_vmkit_cannot_read_are_plan_errors_naming_the_culprit(pg_server, pg_db, ddl, problem):
    sql(pg_server, pg_db, ddl)
    with connect(pg_server.uri(pg_db, "bad")) as c, pytest.raises(PlanError) as exc:
        c.describe()
    assert problem in str(exc.value)


def test_a_vector_column_without_dimension_takes_the_first_rows_and_rejects_others(pg_server, pg_db):
    sql(pg_server, pg_db, "CREATE TABLE lc (id text PRIMARY KEY, embedding vector, metadata jsonb)",
        "INSERT INTO lc VALUES ('a', '[1,2]', '{}'), ('b', '[1,2,3]', '{}'), ('c', '[3,4]', NULL)")
    with connect(pg_server.uri(pg_db, "lc", metric="cosine")) as c:
        info = c.describe()
        got = _scan_all(c, 10)
    assert info.dimension == 2 and "declares no dimension" in info.findings[0]["message"]
    assert got.ids == ["a", "c"] and got.metadata == [{}, {}]
    assert [(r.record_id, r.field) for r in got.rejected] == [("b", "vector.embedding")]


def _rich(ids, dim=4):
    rng = np.random.default_rng(3)
    metas = [{"title": f"doc {i}", "rank": i, "score": i / 7, "ok": i % 2 == 0, "when": "2024-01-01",
              "tags": ["x", i], "info": {"a": i, "big": 2**70}, "huge": 1e20} for i in range(len(ids))]
    return RecordBatch(ids, rng.standard_normal((len(ids), dim)).astype(np.float32), metas)


@pytest.mark.parametrize("pk, ids", [("text", ["k1", "ключ", "😀", "0f8fad5b-d9cb-469f-a165-70867728950e"]),
                                     ("bigint", [0, 5, 2**63 - 1]),
                                     ("uuid", [str(uuid.UUID(int=i)) for i in (1, 2, 3)])])
def test_created_jsonb_table_round_trips_exactly_and_upserts_idempotently(pg_server, pg_db, pk, ids):
    with connect(pg_server.uri(pg_db, "out", pk=pk)) as c:
        c.create(TargetSpec("out", 4, "euclidean", sparse=True))
        b = _rich(ids)
        b.sparse = [SparseVector.of([3, 999_999], [1.5, -2.0])] + [None] * (len(ids) - 1)
        doubled = RecordBatch.concat([b, b])  # a repeated id in one batch: the last one wins
        c.upsert(doubled)
        c.upsert(b)
        got = c.fetch(list(reversed(ids)))
        assert c.count() == len(ids)
    order = [got.ids.index(i) for i in ids]
    assert [got.metadata[r] for r in order] == b.metadata
    np.testing.assert_array_equal(got.vectors[order], b.vectors)
    assert got.sparse[order[0]] == b.sparse[0] and got.sparse[order[1]] is None


def test_typed_columns_from_the_plan_fields_and_new_keys_as_jsonb(pg_server, pg_db):
    uri = pg_server.uri(pg_db, "typed", columns="typed", pk="bigint")
    with connect(uri) as c:
        c.create(TargetSpec("typed", 2, "cosine", fields={"n": "int", "x": "float", "s": "str", "ok": "bool",
                                                          "j": "json"}))
        assert c.capabilities.reserved_fields >= {"id", "embedding"}
        metas = [{"n": 2**62, "x": 1, "s": "é", "ok": False, "j": {"deep": [1.5]}},
                 {"x": 2.5, "later": {"k": 1e20}}, {"x": 1e20}]
        c.upsert(RecordBatch([1, 2, 3], np.ones((3, 2), np.float32), metas))
        got = c.fetch([1, 2, 3])
        with pytest.raises(InvalidData, match=r"record 4 \[metadata.n\].*'n' \(int8\)"):
            c.upsert(RecordBatch([4], np.ones((1, 2), np.float32), [{"n": "seven"}]))
        with pytest.raises(InvalidData, match=r"record 5 \[metadata.n\]: the integer"):
            c.upsert(RecordBatch([5], np.ones((1, 2), np.float32), [{"n": 2**63}]))
    assert got.metadata == metas  # ints and floats apart in the numeric column; 1e20 stays a float
    assert isinstance(got.metadata[2]["x"], float) and isinstance(got.metadata[0]["x"], int)
    types = dict(query(pg_server, pg_db, "SELECT column_name, data_type FROM information_schema.columns "
                                         "WHERE table_name = 'typed'"))
    assert types == {"id": "bigint", "embedding": "USER-DEFINED", "n": "bigint", "x": "numeric", "s": "text",
                     "ok": "boolean", "j": "jsonb", "later": "jsonb"}


@pytest.mark.parametrize("meta, vec, field", [
    ({"a": "nul\x00"}, [1.0, 2.0], "metadata"),
    ({"a": [float("nan")]}, [1.0, 2.0], "metadata"),
    ({}, [float("nan"), 1.0], "vector."),
])
def test_values_jsonb_or_pgvector_refuse_are_invalid_data_naming_the_record(pg_server, pg_db, meta, vec, field):
    with connect(pg_server.uri(pg_db, "r")) as c:
        c.create(TargetSpec("r", 2, "dot"))
        with pytest.raises(InvalidData) as exc:
            c.upsert(RecordBatch(["bad-one"], np.array([vec], np.float32), [meta]))
        assert c.count() == 0
    assert "record 'bad-one'" in str(exc.value) and f"[{field}" in str(exc.value)


def test_a_dimension_the_table_does_not_take_is_terminal(pg_server, pg_db):
    with connect(pg_server.uri(pg_db, "d")) as c:
        c.create(TargetSpec("d", 3, "dot"))
        with pytest.raises(TerminalError, match="2 dimensions.*takes 3"):
            c.upsert(RecordBatch(["a"], np.ones((1, 2), np.float32), [{}]))


def test_the_index_is_built_by_finish_load_with_the_metrics_operator_class(pg_server, pg_db):
    with connect(pg_server.uri(pg_db, "ix")) as c:
        c.create(TargetSpec("ix", 2, "cosine", vector_name="a", extra_vectors={"b": {"dimension": 3, "metric": "dot"}}))
        b = RecordBatch(["r1"], np.ones((1, 2), np.float32), [{}], named={"b": np.ones((1, 3), np.float32)},
                        vector_name="a")
        c.upsert(b)
        assert query(pg_server, pg_db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'ix' "
                                       "AND indexdef LIKE '%hnsw%'") == []  # not during the load
        c.finish_load()
        c.finish_load()  # idempotent
        info = c.describe()
    defs = sorted(r[0] for r in query(pg_server, pg_db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'ix' "
                                                        "AND indexdef LIKE '%hnsw%'"))
    assert len(defs) == 2 and "(a vector_cosine_ops)" in defs[0] + defs[1] and "(b vector_ip_ops)" in defs[0] + defs[1]
    assert (info.vector_name, info.metric, info.extra_vectors) == ("a", "cosine", {"b": {"dimension": 3, "metric": "dot"}})


def test_drop_refuses_a_table_vmkit_did_not_create(pg_server, pg_db):
    sql(pg_server, pg_db, "CREATE TABLE mine (id int PRIMARY KEY, v vector(2))")
    with connect(pg_server.uri(pg_db, "mine", metric="dot")) as c, pytest.raises(TerminalError, match="not created by vmkit"):
        c.drop()
    assert query(pg_server, pg_db, "SELECT count(*) FROM mine") == [(0,)]


def test_a_user_name_may_be_in_the_uri_a_password_never(pg_server, pg_db, monkeypatch):
    with pytest.raises(SecretInURI) as exc:
        connect(f"postgresql://{PW_ROLE}:s3cr3t-canary@127.0.0.1:{pg_server.port}/{pg_db}?table=t")
    assert "s3cr3t" not in str(exc.value)
    with pytest.raises(SecretInURI):
        connect(f"qdrant://{PW_ROLE}@127.0.0.1:6333/c")  # other connectors: no user either
    uri = f"postgres://{PW_ROLE}@127.0.0.1:{pg_server.port}/{pg_db}?table=pw"
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with connect(uri) as c, pytest.raises(TerminalError, match="password"):
        c.describe()
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)  # libpq's own environment
    with connect(uri) as c:
        assert c.describe() is None


def test_numeric_values_come_back_exact(pg_server, pg_db):
    sql(pg_server, pg_db, "CREATE TABLE nm (id int PRIMARY KEY, v vector(1), n numeric)",
        "INSERT INTO nm VALUES (1, '[1]', 0.1), (2, '[1]', 3), (3, '[1]', 0.1000000000000000000001)")
    with connect(pg_server.uri(pg_db, "nm", metric="dot")) as c:
        got = _scan_all(c, 10)
    assert [m["n"] for m in got.metadata] == [0.1, 3, "0.1000000000000000000001"]
    assert decimal.Decimal(got.metadata[2]["n"]) == decimal.Decimal("0.1000000000000000000001")


def test_a_lost_connection_is_transient_and_the_next_call_reconnects(pg_server, pg_db):
    from vmkit.core.errors import TransientError

    with connect(pg_server.uri(pg_db, "tr")) as c:
        c.create(TargetSpec("tr", 2, "dot"))
        assert c.count() == 0
        sql(pg_server, pg_db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = 'vmkit' AND datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(TransientError):
            c.count()
        assert c.count() == 0


@pytest.mark.parametrize("name, kind", [("SerializationFailure", "TransientError"),
                                        ("DeadlockDetected", "TransientError"),
                                        ("AdminShutdown", "TransientError"),
                                        ("NumericValueOutOfRange", "InvalidData"),
                                        ("NotNullViolation", "InvalidData"),
                                        ("UndefinedTable", "TerminalError"),
                                        ("InvalidPassword", "TerminalError")])
def test_errors_are_classified_by_sqlstate(name, kind):
    import psycopg.errors

    from vmkit.connectors.pgvector.errors import classify

    assert type(classify(getattr(psycopg.errors, name)("boom"), "testing")).__name__ == kind


def test_negative_zero_in_jsonb_comes_back_as_zero(pg_server, pg_db):
    with connect(pg_server.uri(pg_db, "z")) as c:
        c.create(TargetSpec("z", 1, "dot"))
        c.upsert(RecordBatch(["a"], np.ones((1, 1), np.float32), [{"z": -0.0}]))
        got = c.fetch(["a"]).metadata[0]["z"]
    assert got == 0.0 and str(got) == "0.0"  # numeric has no negative zero (docs/databases.md says so)


def test_a_write_over_existing_keys_updates_them_whole(pg_server, pg_db):
    """The first write COPYs straight in; one that meets existing keys upserts (same result as
    one record at a time: new rows added, existing ones replaced, keys not written untouched)."""
    with connect(pg_server.uri(pg_db, "up", columns="typed")) as c:
        c.create(TargetSpec("up", 2, "dot", fields={"a": "int", "b": "str"}))
        c.upsert(RecordBatch(["k1", "k2"], np.zeros((2, 2), np.float32), [{"a": 1, "b": "x"}, {"a": 2}]))
        c.upsert(RecordBatch(["k2", "k3"], np.ones((2, 2), np.float32), [{"b": "new"}, {"a": 3}]))
        got = c.fetch(["k1", "k2", "k3"])
    by_id = {rid: (got.vectors[i].tolist(), got.metadata[i]) for i, rid in enumerate(got.ids)}
    assert by_id == {"k1": ([0, 0], {"a": 1, "b": "x"}), "k2": ([1, 1], {"b": "new"}), "k3": ([1, 1], {"a": 3})}
