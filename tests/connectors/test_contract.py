"""The Connector contract, run against every embedded engine (the same calls, each backend)."""

from __future__ import annotations

import numpy as np
import pytest

from vmkit import TargetSpec, connect
from vmkit.errors import ConfigError, SecretInURI
from vmkit.records import RecordBatch, SparseVector

DIM = 8


@pytest.fixture(params=["memory", "qdrant-dir", "qdrant-mem"])
def uri(request, tmp_path):
    return {
        "memory": "memory://c",
        "qdrant-dir": f"qdrant://{tmp_path}/q?collection=c",
        "qdrant-mem": "qdrant:///:memory:?collection=c",
    }[request.param]


@pytest.fixture
def conn(uri):
    c = connect(uri)
    if c.describe() is not None:
        c.drop()
    c.create(TargetSpec("c", DIM, "dot", sparse=True))
    yield c
    c.drop()
    c.close()


def batch(ids, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    n = len(ids)
    sp = [SparseVector.of([1, 5 + i], [0.5, float(i)]) for i in range(n)] if sparse else None
    return RecordBatch(list(ids), rng.standard_normal((n, DIM)), [{"i": i, "tags": ["a"]} for i in range(n)], sp)


def scan_all(conn, limit, cursor=None):
    out = []
    while True:
        b, cursor = conn.scan(cursor, limit)
        out.extend(b.ids)
        if cursor is None:
            return out


def test_describe_reports_spec_and_count(conn):
    conn.upsert(batch(range(10)))
    info = conn.describe()
    assert (info.dimension, info.metric, info.count) == (DIM, "dot", 10)
    assert conn.count() == 10


def test_scan_resumes_from_a_persisted_cursor(conn):
    ids = list(range(0, 70, 2)) + ["0f8fad5b-d9cb-469f-a165-70867728950e"]
    conn.upsert(batch(ids))
    first, cursor = conn.scan(None, 10)
    assert len(first) == 10 and isinstance(cursor, str)
    rest = scan_all(type(conn)(conn.uri), 7, cursor)  # a fresh connector, as after a restart
    assert sorted(map(str, first.ids + rest)) == sorted(map(str, ids))
    assert len(set(map(str, first.ids + rest))) == len(ids)


def test_upsert_is_idempotent_and_fetch_returns_what_was_written(conn):
    b = batch([1, 2, 3], sparse=True)
    conn.upsert(b)
    conn.upsert(b)
    assert conn.count() == 3
    got = conn.fetch([3, 1, 99])
    assert sorted(got.ids) == [1, 3]
    row = got.ids.index(3)
    assert np.array_equal(got.vectors[row], b.vectors[2])
    assert got.metadata[row] == {"i": 2, "tags": ["a"]}
    assert got.sparse is not None and got.sparse[row] == b.sparse[2]


def test_delete_removes_only_named_ids(conn):
    conn.upsert(batch(range(5)))
    conn.delete([1, 3])
    assert sorted(scan_all(conn, 100)) == [0, 2, 4]


def test_fetch_never_aliases_the_callers_arrays(conn):
    b = batch([7])
    conn.upsert(b)
    before = b.vectors.copy()
    got = conn.fetch([7])
    got.vectors[0] += 1
    assert np.array_equal(b.vectors, before)
    assert np.array_equal(conn.fetch([7]).vectors[0], before[0])


def test_missing_collection_is_none(uri):
    with connect(uri) as c:
        if c.describe() is not None:
            c.drop()
        assert c.describe() is None


@pytest.mark.parametrize("bad", ["qdrant://user:s3cr3t-canary@host:6333/c", "qdrant:///d?collection=c&api_key=s3cr3t-canary"])
def test_credentials_in_uri_are_refused_without_echo(bad):
    with pytest.raises(SecretInURI) as exc:
        connect(bad)
    assert "s3cr3t" not in str(exc.value)


def test_unknown_scheme_and_missing_collection_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown connector"):
        connect("nosuch://x")
    with pytest.raises(ConfigError, match="collection"):
        connect(f"qdrant://{tmp_path}")


def test_cosine_collection_stores_unit_vectors(tmp_path):
    with connect(f"qdrant://{tmp_path}/q?collection=u") as c:
        c.create(TargetSpec("u", DIM, "cosine"))
        c.upsert(batch([1]))
        assert np.linalg.norm(c.fetch([1]).vectors[0]) == pytest.approx(1.0, abs=1e-6)
        assert c.capabilities.normalizes_cosine
