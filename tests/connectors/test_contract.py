"""The Connector contract, run against every embedded engine (the same calls, each backend),
and against live services when their environment variables are set (``make test-live``):

- ``VMKIT_QDRANT_URL=host:6333`` (``QDRANT_API_KEY`` if the server needs one): a Qdrant server;
  each test makes a collection of its own and drops it.
- ``VMKIT_WEAVIATE_URL=weaviate://host:8080?grpc_port=50051`` (``WEAVIATE_API_KEY`` if needed):
  each test makes a collection of its own and drops it.
- ``VMKIT_MILVUS_URL=host:19530`` (``MILVUS_TOKEN`` if the server needs one): a Milvus server;
  each test makes a collection of its own and drops it.
- ``PINECONE_API_KEY`` and ``VMKIT_PINECONE_LIVE_INDEX`` (an existing serverless index vmkit
  may write to): each test writes into a namespace of its own in that index, of the index's
  dimension, and deletes every id it wrote; the index itself is never created or dropped.

Without them the live cases are skipped, the reason saying which variable is missing. Ids are
whole numbers where the backend takes them, else strings (Pinecone) or UUIDs (Weaviate); on an
eventually consistent service a read is repeated until it sees the writes (at most 120 s).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from vmkit import TargetSpec, connect
from vmkit.core.errors import ConfigError, SecretInURI
from vmkit.core.records import RecordBatch, SparseVector

DIM = 8
SETTLE_S = 120.0  # how long a read may wait to see writes on an eventually consistent service

_LIVE = {
    "qdrant-live": (["VMKIT_QDRANT_URL"], "a Qdrant server, e.g. VMKIT_QDRANT_URL=localhost:6333"),
    "weaviate-live": (["VMKIT_WEAVIATE_URL"],
                      "e.g. VMKIT_WEAVIATE_URL=weaviate://localhost:8080?grpc_port=50051"),
    "milvus-live": (["VMKIT_MILVUS_URL"], "a Milvus server, e.g. VMKIT_MILVUS_URL=localhost:19530 "
                    "(MILVUS_TOKEN if it needs one)"),
    "pinecone-live": (["PINECONE_API_KEY", "VMKIT_PINECONE_LIVE_INDEX"],
                      "a serverless index vmkit may write to"),
}


def _live(name: str) -> Any:
    names, what = _LIVE[name]
    unset = [n for n in names if not os.environ.get(n)]
    reason = f"{name}: {' and '.join(unset)} not set ({what})"
    return pytest.param(name, marks=[pytest.mark.live, pytest.mark.skipif(bool(unset), reason=reason)])


def _live_uri(name: str, token: str) -> str:
    if name == "qdrant-live":
        return f"qdrant://{os.environ['VMKIT_QDRANT_URL'].removeprefix('http://')}/vmkit_contract_{token}"
    if name == "weaviate-live":
        head, _, query = os.environ["VMKIT_WEAVIATE_URL"].partition("?")
        return f"{head.rstrip('/')}/VmkitContract{token}" + (f"?{query}" if query else "")
    if name == "milvus-live":
        return f"milvus://{os.environ['VMKIT_MILVUS_URL'].removeprefix('http://')}/vmkit_contract_{token}"
    return f"pinecone://{os.environ['VMKIT_PINECONE_LIVE_INDEX']}?namespace=vmkit-contract-{token}"


@pytest.fixture(params=["memory", "qdrant-dir", "qdrant-mem", "milvus", "pgvector", "chroma", "lancedb",
                        "parquet", *map(_live, _LIVE)])
def uri(request, tmp_path):
    if request.param in _LIVE:
        return _live_uri(request.param, uuid.uuid4().hex[:8])
    if request.param == "pgvector":  # only this param starts PostgreSQL (tests/engines/postgres.py)
        server, db = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_db")
        return server.uri(db, "c")
    return {
        "memory": "memory://c",
        "qdrant-dir": f"qdrant://{tmp_path}/q?collection=c",
        "qdrant-mem": "qdrant:///:memory:?collection=c",
        "milvus": f"milvus://{tmp_path}/m.db?collection=c",
        "chroma": f"chroma://{tmp_path}/chroma?collection=contract",
        "lancedb": f"lancedb://{tmp_path}/lance?table=c",
        "parquet": f"parquet://{tmp_path}/pq",
    }[request.param]


def _in_shared_index(uri: str) -> bool:
    """A Pinecone namespace in an index the tests must not create or drop."""
    return uri.startswith("pinecone://")


@pytest.fixture
def conn(uri) -> Iterator[Any]:
    c = connect(uri)
    written: list[tuple[str, list[Any]]] = []
    if _in_shared_index(uri):
        info = c.describe()
        assert info is not None, f"the index of {uri} does not exist"
        c.dim, c.metric, c.sparse_ok = info.dimension, info.metric, info.metric == "dot"
        real = c.upsert

        def upsert(b: RecordBatch) -> None:
            written.append((b.namespace, list(b.ids)))
            real(b)

        c.upsert = upsert
    else:
        if c.describe() is not None:
            c.drop()
        c.create(TargetSpec("c", DIM, "dot", sparse=c.capabilities.sparse))
        c.dim, c.metric, c.sparse_ok = DIM, "dot", c.capabilities.sparse
    try:
        yield c
    finally:
        try:
            if _in_shared_index(uri):
                for ns, ids in written:
                    c.delete(ids, ns)
            else:
                c.drop()
        finally:
            c.close()


def ns_of(conn) -> str:
    """The namespace the records of ``conn`` go to: a live Pinecone test's own, else ''."""
    return conn.namespace if conn.scheme == "pinecone" else ""


def rid(conn, k: Any) -> Any:
    """The id ``k`` (a whole number or a UUID string) as ``conn`` takes ids."""
    kinds = conn.capabilities.id_kinds
    if isinstance(k, str) or "uint" in kinds:
        return k
    return f"id-{k}" if "string" in kinds else str(uuid.UUID(int=k + 1))


def batch(conn, keys, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    n = len(keys)
    sp = [SparseVector.of([1, 5 + i], [0.5, float(i)]) for i in range(n)] if sparse else None
    return RecordBatch([rid(conn, k) for k in keys], rng.standard_normal((n, conn.dim)).astype(np.float32),
                       [{"i": i, "tags": ["a"]} for i in range(n)], sp, namespace=ns_of(conn))


def scan_all(conn, limit, cursor=None):
    out = []
    while True:
        b, cursor = conn.scan(cursor, limit)
        out.extend(b.ids)
        if cursor is None:
            return out


def settled(conn, read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """``read()``, repeated on an eventually consistent service until ``done`` holds of it (or
    SETTLE_S passed: then the caller's assertion reports what it saw)."""
    got = read()
    deadline = time.monotonic() + SETTLE_S
    while conn.capabilities.eventually_consistent and not done(got) and time.monotonic() < deadline:
        time.sleep(1.0)
        got = read()
    return got


def test_describe_reports_spec_and_count(conn):
    conn.upsert(batch(conn, range(10)))
    assert settled(conn, conn.count, lambda n: n == 10) == 10
    info = conn.describe()
    assert (info.dimension, info.metric, info.count) == (conn.dim, conn.metric, 10)


def test_scan_resumes_from_a_persisted_cursor(conn):
    ids = [rid(conn, k) for k in range(0, 70, 2)] + ["0f8fad5b-d9cb-469f-a165-70867728950e"]
    b = batch(conn, ids)
    conn.upsert(b)
    settled(conn, lambda: scan_all(conn, 100), lambda got: len(got) == len(ids))
    first, cursor = conn.scan(None, 10)
    assert len(first) == 10 and isinstance(cursor, str)
    rest = scan_all(type(conn)(conn.uri), 7, cursor)  # a fresh connector, as after a restart
    assert sorted(map(str, first.ids + rest)) == sorted(map(str, ids))
    assert len(set(map(str, first.ids + rest))) == len(ids)


def test_upsert_is_idempotent_and_fetch_returns_what_was_written(conn):
    b = batch(conn, [1, 2, 3], sparse=conn.sparse_ok)
    conn.upsert(b)
    conn.upsert(b)
    ns = ns_of(conn)
    got = settled(conn, lambda: conn.fetch([rid(conn, 3), rid(conn, 1), rid(conn, 99)], ns),
                  lambda g: len(g) == 2)
    assert conn.count() == 3 or conn.capabilities.eventually_consistent  # stats may lag more
    assert sorted(map(str, got.ids)) == sorted(map(str, [rid(conn, 1), rid(conn, 3)]))
    row = got.ids.index(rid(conn, 3))
    assert np.array_equal(got.vectors[row], b.vectors[2])
    assert got.metadata[row] == {"i": 2, "tags": ["a"]}
    if conn.sparse_ok:
        assert got.sparse is not None and got.sparse[row] == b.sparse[2]


def test_delete_removes_only_named_ids(conn):
    conn.upsert(batch(conn, range(5)))
    settled(conn, lambda: scan_all(conn, 100), lambda got: len(got) == 5)
    conn.delete([rid(conn, 1), rid(conn, 3)], ns_of(conn))
    want = sorted(map(str, [rid(conn, 0), rid(conn, 2), rid(conn, 4)]))
    got = settled(conn, lambda: sorted(map(str, scan_all(conn, 100))), lambda g: g == want)
    assert got == want


def test_fetch_never_aliases_the_callers_arrays(conn):
    b = batch(conn, [7])
    conn.upsert(b)
    before = b.vectors.copy()
    ns, key = ns_of(conn), rid(conn, 7)
    got = settled(conn, lambda: conn.fetch([key], ns), lambda g: len(g) == 1)
    got.vectors[0] += 1
    assert np.array_equal(b.vectors, before)
    assert np.array_equal(conn.fetch([key], ns).vectors[0], before[0])


def test_missing_collection_is_none(uri):
    if _in_shared_index(uri):  # the shared index exists: ask for one that does not
        uri = f"pinecone://vmkit-missing-{uuid.uuid4().hex[:8]}"
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
        c.dim = DIM
        c.upsert(batch(c, [1]))
        assert np.linalg.norm(c.fetch([1]).vectors[0]) == pytest.approx(1.0, abs=1e-6)
        assert c.capabilities.normalizes_cosine
