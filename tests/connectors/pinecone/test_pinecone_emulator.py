"""Fidelity of the Pinecone emulator, driven through the unmodified ``pinecone`` SDK (and raw
HTTP where the SDK validates before sending, to prove the server-side rule too)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator

pinecone = pytest.importorskip("pinecone")
from pinecone.errors.exceptions import (  # noqa: E402 - after the importorskip
    ApiError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PineconeValueError,
    RateLimitError,
    ServiceError,
    UnauthorizedError,
)

SCHEMA = {"fields": {"_values": {"type": "dense_vector", "dimension": 4, "metric": "cosine"}}}


def _index(pinecone_emu: PineconeEmulator, name: str = "idx", dimension: int = 4,
           metric: str = "cosine") -> Any:
    pinecone_emu.create_index(name, dimension, metric)
    return pinecone.Pinecone().index(host=pinecone_emu.host(name))


def _raw(pinecone_emu: PineconeEmulator, index: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Api-Key": EMU_KEY, "X-Pinecone-Api-Version": "2026-07", **kw.pop("headers", {})}
    return _HTTP.request(method, pinecone_emu.host(index) + path, headers=headers, **kw)


_HTTP = httpx.Client()  # one pool: building a client per request costs an SSL context


def _vec(i: int, dim: int = 4) -> list[float]:
    return [float(i + 1)] + [0.5] * (dim - 1)


# -- control plane -----------------------------------------------------------------------------
def test_control_plane_create_describe_list_delete(pinecone_emu: PineconeEmulator) -> None:
    pc = pinecone.Pinecone()
    model = pc.indexes.create(name="docs", schema=SCHEMA,
                              deployment={"deployment_type": "managed", "cloud": "aws",
                                          "region": "us-east-1"})
    assert (model.name, model.status.ready, model.status.state) == ("docs", True, "Ready")
    dense = model.schema.fields["_values"]
    assert (dense.dimension, dense.metric) == (4, "cosine")
    assert (model.deployment.cloud, model.deployment.region) == ("aws", "us-east-1")
    assert model.host == pinecone_emu.host("docs") and model.deletion_protection == "disabled"
    assert [m.name for m in pc.indexes.list()] == ["docs"]
    with pytest.raises(ConflictError):
        pc.indexes.create(name="docs", schema=SCHEMA)
    pc.indexes.delete("docs", timeout=-1)
    assert not pc.indexes.exists("docs")
    with pytest.raises(NotFoundError):
        pc.indexes.describe("docs")


def test_index_initializes_before_ready_and_pods_decode(pinecone_emu: PineconeEmulator) -> None:
    pc = pinecone.Pinecone()
    pinecone_emu.polls_until_ready = 2
    model = pc.indexes.create(name="slow", schema=SCHEMA, timeout=-1)
    assert (model.status.ready, model.status.state) == (False, "Initializing")
    states = [pc.indexes.describe("slow").status.ready for _ in range(3)]
    assert states == [False, False, True]
    pinecone_emu.create_index("pods", 4, pod=True)
    assert pc.indexes.describe("pods").deployment.pod_type == "p1.x1"


def test_bad_create_requests_are_400(pinecone_emu: PineconeEmulator) -> None:
    pc = pinecone.Pinecone()
    bad = {"fields": {"_values": {"type": "dense_vector", "dimension": 20_001, "metric": "cosine"}}}
    with pytest.raises(ApiError) as err:
        pc.indexes.create(name="big", schema=bad, timeout=-1)
    assert err.value.status_code == 400
    assert not pc.indexes.exists("big")


def test_wrong_or_missing_key_and_version_are_refused(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("idx", 4)
    with pytest.raises(UnauthorizedError) as err:
        list(pinecone.Pinecone(api_key="wrong-key").indexes.list())
    assert err.value.status_code == 401
    with pytest.raises(UnauthorizedError):
        pinecone.Pinecone(api_key="wrong-key").index(host=pinecone_emu.host("idx")).describe_index_stats()
    assert _raw(pinecone_emu, "idx", "POST", "/describe_index_stats", json={},
                headers={"Api-Key": ""}).status_code == 401
    old = _raw(pinecone_emu, "idx", "POST", "/describe_index_stats", json={},
               headers={"X-Pinecone-Api-Version": "2025-04"})
    assert old.status_code == 400 and "2026-07" in old.json()["message"]


# -- upsert limits -----------------------------------------------------------------------------
def test_upsert_record_and_size_limits(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu, dimension=8)
    with pytest.raises(ApiError) as err:
        idx.upsert(vectors=[(f"v{i}", _vec(i, 8)) for i in range(1001)])
    assert err.value.status_code == 400 and "1000" in err.value.message
    big = [(f"v{i}", _vec(i, 8), {"text": "x" * 30_000}) for i in range(80)]  # ~2.4 MB
    with pytest.raises(PayloadTooLargeError) as err:
        idx.upsert(vectors=big)
    assert err.value.status_code == 413
    assert idx.upsert(vectors=[(f"v{i}", _vec(i, 8)) for i in range(1000)]).upserted_count == 1000
    assert idx.describe_index_stats().total_vector_count == 1000


@pytest.mark.parametrize(
    ("vector", "needle"),
    [
        ({"id": "a" * 513, "values": [1.0, 0, 0, 0]}, "1-512"),
        ({"id": "", "values": [1.0, 0, 0, 0]}, "1-512"),
        ({"id": "d", "values": [1.0, 2.0, 3.0]}, "dimension 3 does not match"),
        ({"id": "z", "values": [0.0, 0.0, 0.0, 0.0]}, "only zeros"),
        ({"id": "s", "values": [1.0, 0, 0, 0],
          "sparse_values": {"indices": list(range(1001)), "values": [1.0] * 1001}}, "1000"),
        ({"id": "m", "values": [1.0, 0, 0, 0], "metadata": {"t": "x" * 41_000}}, "40960"),
    ],
)
def test_upsert_rejects_what_the_service_rejects(pinecone_emu: PineconeEmulator, vector: dict,
                                                 needle: str) -> None:
    idx = _index(pinecone_emu)
    with pytest.raises(ApiError) as err:
        idx.upsert(vectors=[vector, {"id": "fine", "values": [1.0, 0, 0, 0]}])
    assert err.value.status_code == 400 and needle in err.value.message
    assert idx.describe_index_stats().total_vector_count == 0  # all or nothing


def test_non_ascii_ids_are_refused_by_sdk_and_server(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    with pytest.raises(PineconeValueError, match="ASCII"):  # the SDK checks before sending ...
        idx.upsert(vectors=[("café", [1.0, 0, 0, 0])])
    r = _raw(pinecone_emu, "idx", "POST", "/vectors/upsert",  # ... and the service answers 400
             json={"vectors": [{"id": "ok", "values": [1, 0, 0, 0]},
                               {"id": "café", "values": [1, 0, 0, 0]}]})
    assert r.status_code == 400 and "ID must be ASCII, but got 'café'" in r.text
    assert idx.describe_index_stats().total_vector_count == 0  # all or nothing
    assert _raw(pinecone_emu, "idx", "POST", "/vectors/upsert",  # every ASCII character is an id character
                json={"vectors": [{"id": "a b\t~", "values": [1, 0, 0, 0]}]}).status_code == 200


def test_metadata_rules_server_side(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    with pytest.raises(TypeError):  # the SDK refuses nested metadata before sending ...
        idx.upsert(vectors=[("n", [1.0, 0, 0, 0], {"o": {"k": 1}})])
    for meta in ({"o": {"k": 1}}, {"l": ["a", 1]}, {"$x": "y"}):  # ... and so does the server
        r = _raw(pinecone_emu, "idx", "POST", "/vectors/upsert",
                 json={"vectors": [{"id": "n", "values": [1, 0, 0, 0], "metadata": meta}]})
        assert r.status_code == 400, meta
    idx.upsert(vectors=[("k", [1.0, 0, 0, 0], {"i": 7, "b": True, "s": "t", "l": ["a"],
                                               "gone": None})])
    got = idx.fetch(ids=["k"]).vectors["k"].metadata
    assert got == {"i": 7.0, "b": True, "s": "t", "l": ["a"]}  # nulls stripped, numbers float64
    assert isinstance(got["i"], float)


# -- fetch, namespaces, stats ------------------------------------------------------------------
def test_fetch_namespaces_and_stats(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu, metric="dotproduct")
    idx.upsert(vectors=[("a", _vec(1)), ("b", _vec(2))])
    idx.upsert(vectors=[{"id": "a", "values": _vec(3),
                         "sparse_values": {"indices": [9, 2], "values": [0.5, 0.25]}}],
               namespace="other")
    got = idx.fetch(ids=["a", "b", "missing"]).vectors
    assert sorted(got) == ["a", "b"] and got["a"].values == _vec(1)
    other = idx.fetch(ids=["a", "b"], namespace="other").vectors
    assert sorted(other) == ["a"]
    assert other["a"].sparse_values.indices == [2, 9]
    assert other["a"].sparse_values.values == [0.25, 0.5]
    assert sorted(idx.fetch(ids=["a", "b"], namespace="__default__").vectors) == ["a", "b"]
    stats = idx.describe_index_stats()
    assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 2,
                                                                         "other": 1}
    assert (stats.total_vector_count, stats.dimension, stats.metric) == (3, 4, "dotproduct")
    r = _raw(pinecone_emu, "idx", "GET", "/vectors/fetch", params={"ids": [f"i{i}" for i in range(1001)]})
    assert r.status_code == 400


def test_float32_values_round_trip_exactly(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu, dimension=16)
    vec = np.random.default_rng(5).standard_normal(16).astype(np.float32)
    idx.upsert(vectors=[("r", vec.tolist())])
    back = np.asarray(idx.fetch(ids=["r"]).vectors["r"].values, np.float32)
    assert np.array_equal(back, vec)


# -- list --------------------------------------------------------------------------------------
def test_list_is_bytewise_paginated_and_prefixed(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    ids = ["b", "B", "a", "_x", "~", "10", "9", "a b", "a%", "doc#1", "doc#10", "doc#2"]
    idx.upsert(vectors=[(rid, _vec(i)) for i, rid in enumerate(ids)])
    pages, token = [], None
    while True:
        page = idx.list_paginated(limit=5, pagination_token=token)
        pages.append([v.id for v in page.vectors])
        if page.pagination is None:
            break
        token = page.pagination.next
    assert [i for p in pages for i in p] == sorted(ids, key=str.encode)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [v.id for p in idx.list(prefix="doc#1") for v in p.vectors] == ["doc#1", "doc#10"]
    exact = idx.list_paginated(limit=12)  # a full last page still hands out a token ...
    assert exact.pagination is not None
    tail = idx.list_paginated(limit=12, pagination_token=exact.pagination.next)
    assert tail.vectors == [] and tail.pagination is None  # ... and the next page is empty
    with pytest.raises(NotFoundError) as err:  # a namespace that does not exist
        idx.list_paginated(namespace="nowhere")
    assert err.value.body == {"code": 5, "message": "Namespace not found", "details": []}


def test_list_limits_tokens_and_pods(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    with pytest.raises(PineconeValueError):
        idx.list_paginated(limit=101)  # the SDK enforces 1..100 ...
    assert _raw(pinecone_emu, "idx", "GET", "/vectors/list", params={"limit": 101}).status_code == 400
    with pytest.raises(ApiError) as err:  # ... and the server refuses forged tokens
        idx.list_paginated(pagination_token="not-a-token")
    assert err.value.status_code == 400
    pinecone_emu.create_index("pods", 4, pod=True)
    pod = pinecone.Pinecone().index(host=pinecone_emu.host("pods"))
    with pytest.raises(ApiError) as err:
        pod.list_paginated()
    assert err.value.status_code == 400 and "pod" in err.value.message


# -- query, delete -----------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_query_scores_by_metric(pinecone_emu: PineconeEmulator, metric: str) -> None:
    idx = _index(pinecone_emu, metric=metric)
    rows = {"near": [1.0, 0.1, 0, 0], "far": [-1.0, 0, 0, 0], "long": [10.0, 10.0, 0, 0]}
    idx.upsert(vectors=list(rows.items()))
    res = idx.query(vector=[1.0, 0, 0, 0], top_k=3, include_values=True)
    q = np.array([1.0, 0, 0, 0])
    expected = {rid: (float(np.dot(q, v)) / np.linalg.norm(v) if metric == "cosine" else
                      float(np.sum((q - v) ** 2)) if metric == "euclidean" else
                      float(np.dot(q, v))) for rid, v in ((k, np.array(v)) for k, v in rows.items())}
    assert {m.id: round(m.score, 5) for m in res.matches} == \
        {k: round(v, 5) for k, v in expected.items()}
    order = sorted(expected, key=expected.get, reverse=metric != "euclidean")
    assert [m.id for m in res.matches] == order
    assert np.array_equal(np.float32(res.matches[0].values), np.float32(rows[order[0]]))
    assert [m.id for m in idx.query(id="near", top_k=1).matches] == [order[0]]


def test_sparse_queries_only_on_dotproduct(pinecone_emu: PineconeEmulator) -> None:
    sv = {"indices": [1, 5], "values": [1.0, 2.0]}
    cos = _index(pinecone_emu, "cos")
    cos.upsert(vectors=[{"id": "h", "values": _vec(0), "sparse_values": sv}])  # accepted ...
    with pytest.raises(ApiError):  # ... but not queryable, as the service documents
        cos.query(vector=_vec(0), sparse_vector=sv, top_k=1)
    dot = _index(pinecone_emu, "dot", metric="dotproduct")
    dot.upsert(vectors=[{"id": "h", "values": [1.0, 0, 0, 0], "sparse_values": sv}])
    res = dot.query(vector=[1.0, 0, 0, 0], sparse_vector={"indices": [5], "values": [3.0]},
                    top_k=1)
    assert res.matches[0].score == pytest.approx(1.0 + 6.0)


def test_delete_by_ids_and_all(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    idx.upsert(vectors=[(f"v{i}", _vec(i)) for i in range(5)], namespace="ns")
    idx.upsert(vectors=[("keep", _vec(1))])
    idx.delete(ids=["v0", "v1", "nope"], namespace="ns")
    assert sorted(v.id for p in idx.list(namespace="ns") for v in p.vectors) == ["v2", "v3", "v4"]
    idx.delete(delete_all=True, namespace="ns")
    assert {k: v.vector_count for k, v in idx.describe_index_stats().namespaces.items()} == \
        {"__default__": 1}
    r = _raw(pinecone_emu, "idx", "POST", "/vectors/delete", json={"ids": [f"i{i}" for i in range(1001)]})
    assert r.status_code == 400


# -- eventual consistency and faults ---------------------------------------------------------
def _until(check: Any, deadline_s: float = 10.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_writes_become_visible_after_the_lag(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    idx.upsert(vectors=[("old", _vec(1))])
    pinecone_emu.faults.lag_ms = 1500
    idx.upsert(vectors=[("new", _vec(2))])
    idx.delete(ids=["old"])
    assert idx.upsert(vectors=[("x", _vec(3))]).upserted_count == 1  # acknowledged at once
    assert sorted(idx.fetch(ids=["old", "new"]).vectors) == ["old"]  # not yet visible
    assert idx.describe_index_stats().total_vector_count == 1
    assert [v.id for p in idx.list() for v in p.vectors] == ["old"]
    assert _until(lambda: sorted(idx.fetch(ids=["old", "new", "x"]).vectors) == ["new", "x"])
    assert idx.describe_index_stats().total_vector_count == 2


def test_429_with_and_without_retry_after(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.faults.inject(429, retry_after=3, times=10)
    with pytest.raises(RateLimitError) as err:
        idx.describe_index_stats()
    assert err.value.retry_after == 3.0
    assert pinecone_sdk_sleeps and min(pinecone_sdk_sleeps) >= 3.0  # the SDK honoured the header between tries
    pinecone_emu.faults.clear()
    pinecone_emu.faults.rate_429 = 1.0
    with pytest.raises(RateLimitError) as err:
        idx.describe_index_stats()
    assert err.value.retry_after is None
    pinecone_emu.faults.rate_429 = 0.0
    assert idx.describe_index_stats().total_vector_count == 0


def test_429_bursts_5xx_and_seeded_rng(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("idx", 4)

    def statuses(e: PineconeEmulator, n: int) -> list[int]:
        return [_raw(e, "idx", "POST", "/describe_index_stats", json={}).status_code
                for _ in range(n)]

    pinecone_emu.faults.inject(429, times=3)
    assert statuses(pinecone_emu, 4) == [429, 429, 429, 200]
    pinecone_emu.faults.rate_429, pinecone_emu.faults.burst_429 = 0.3, 3
    seq = statuses(pinecone_emu, 40)
    runs = [len(r) for r in "".join("x" if s == 429 else "." for s in seq).split(".") if r]
    assert runs and all(n % 3 == 0 for n in runs[:-1])  # bursts of 3 (the last may be cut off)
    pinecone_emu.faults.clear()
    pinecone_emu.faults.rate_5xx = 1.0
    assert set(statuses(pinecone_emu, 10)) <= {500, 503}
    with PineconeEmulator(api_key=EMU_KEY, seed=99) as a, \
            PineconeEmulator(api_key=EMU_KEY, seed=99) as b:
        for e in (a, b):
            e.create_index("idx", 4)
            e.faults.rate_429, e.faults.rate_5xx = 0.2, 0.2
        assert statuses(a, 30) == statuses(b, 30)


def test_5xx_faults_and_ghost_writes(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.faults.rate_5xx, pinecone_emu.faults.ghost_writes = 1.0, 1.0
    pinecone_emu.faults.ops = frozenset({"upsert"})
    with pytest.raises(ServiceError) as err:
        idx.upsert(vectors=[("ghost", _vec(1))])
    assert err.value.status_code in (500, 503)
    assert sorted(idx.fetch(ids=["ghost"]).vectors) == ["ghost"]  # applied though it failed
    assert {r.status for r in pinecone_emu.requests("upsert")} <= {500, 503}
    assert [r.status for r in pinecone_emu.requests("fetch")] == [200]


def test_request_log_records_size_records_and_namespace(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    idx.upsert(vectors=[(f"v{i}", _vec(i)) for i in range(7)], namespace="ns")
    (up,) = pinecone_emu.requests("upsert")
    assert (up.status, up.records, up.namespace, up.plane) == (200, 7, "ns", "idx")
    assert up.nbytes > 7 * 4 * 3
