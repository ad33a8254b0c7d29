"""The emulator's stricter side (issue 21), through the unmodified ``pinecone`` SDK: separate
lags for stats, list and fetch; the namespaces listing (``Index.list_namespaces``); a 429 that
never clears (a monthly unit cap); upsert byte limits answered 413, 400 or a bare 413; the
throughput limits in bytes and deleted records."""

from __future__ import annotations

import time
from typing import Any

import pytest
from emulators.pinecone_emulator import PineconeEmulator

pinecone = pytest.importorskip("pinecone")
from pinecone.errors.exceptions import ApiError, RateLimitError  # noqa: E402


def _index(pinecone_emu: PineconeEmulator, name: str = "idx") -> Any:
    pinecone_emu.create_index(name, 4)
    return pinecone.Pinecone().index(host=pinecone_emu.host(name))


def _vecs(n: int, prefix: str = "r", pad: int = 0) -> list[dict[str, Any]]:
    meta = {"pad": "x" * pad} if pad else None
    return [{"id": f"{prefix}{i}", "values": [float(i + 1), 0.5, 0.5, 0.5],
             **({"metadata": meta} if meta else {})} for i in range(n)]


def _until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never became true"
        time.sleep(0.02)


def test_stats_lag_more_than_list_and_fetch(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.faults.lag_ms, pinecone_emu.faults.list_lag_ms, pinecone_emu.faults.stats_lag_ms = 0, 0, 60_000
    idx.upsert(vectors=_vecs(3), namespace="fresh")
    assert sorted(idx.fetch(ids=["r0", "r1", "r2"], namespace="fresh").vectors) == ["r0", "r1", "r2"]
    assert [v.id for v in idx.list_paginated(namespace="fresh").vectors] == ["r0", "r1", "r2"]
    assert "fresh" not in idx.describe_index_stats().namespaces  # stats have not caught up
    names = [ns.name for page in idx.list_namespaces() for ns in page.namespaces]
    assert names == ["fresh"]


def test_list_lags_on_its_own(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.faults.list_lag_ms = 300
    idx.upsert(vectors=_vecs(2), namespace="n")
    assert sorted(idx.fetch(ids=["r0", "r1"], namespace="n").vectors) == ["r0", "r1"]
    assert idx.list_paginated(namespace="n").vectors == []
    assert [ns.name for page in idx.list_namespaces() for ns in page.namespaces] == []
    _until(lambda: len(idx.list_paginated(namespace="n").vectors) == 2)
    assert [ns.name for page in idx.list_namespaces() for ns in page.namespaces] == ["n"]


def test_list_namespaces_pages_in_bytewise_order(pinecone_emu: PineconeEmulator) -> None:
    idx = _index(pinecone_emu)
    names = ["b", "a b", "a+b", "Z", ""]
    for name in names:
        pinecone_emu.seed("idx", [("x", [1.0, 0, 0, 0], None, None)], namespace=name)
    page = idx.list_namespaces_paginated(limit=2)
    assert [ns.name for ns in page.namespaces] == ["Z", "__default__"]
    assert page.total_count == 5 and page.pagination is not None
    got = [ns.name for p in idx.list_namespaces(limit=2) for ns in p.namespaces]
    assert got == sorted(["b", "a b", "a+b", "Z", "__default__"], key=str.encode)
    assert {ns.name: ns.record_count for p in idx.list_namespaces() for ns in p.namespaces}["b"] == 1


def test_an_exhausted_monthly_cap_answers_429_until_cleared(pinecone_emu: PineconeEmulator,
                                                            pinecone_sdk_sleeps: list) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.seed("idx", [("r0", [1.0, 0, 0, 0], None, None)])
    pinecone_emu.faults.exhausted = {"upsert"}
    for _ in range(2):
        with pytest.raises(RateLimitError, match="write unit limit"):
            idx.upsert(vectors=_vecs(1))
    assert len(pinecone_emu.requests("upsert", 429)) == 2 + len(pinecone_sdk_sleeps)  # and the SDK's retries
    assert list(idx.fetch(ids=["r0"]).vectors) == ["r0"]  # reads unaffected
    pinecone_emu.faults.exhausted = {"fetch"}
    with pytest.raises(RateLimitError, match="read unit limit"):
        idx.fetch(ids=["r0"])
    pinecone_emu.faults.clear()
    assert idx.upsert(vectors=_vecs(1)).upserted_count == 1


@pytest.mark.parametrize("how,status,text", [
    ("413", 413, "exceeds the maximum supported size"),
    ("400", 400, "Request size"),
    ("bare413", 413, ""),
])
def test_oversized_upserts_are_refused_each_way(pinecone_emu: PineconeEmulator, how: str, status: int,
                                                 text: str) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.max_request_bytes, pinecone_emu.oversize = 20_000, how
    with pytest.raises(ApiError) as info:
        idx.upsert(vectors=_vecs(40, pad=1000))
    assert info.value.status_code == status and text in str(info.value)
    assert idx.upsert(vectors=_vecs(5, pad=1000)).upserted_count == 5  # small enough


def test_upsert_bytes_and_deleted_records_are_limited(pinecone_emu: PineconeEmulator,
                                                      pinecone_sdk_sleeps: list) -> None:
    idx = _index(pinecone_emu)
    pinecone_emu.rates.limits.update(upsert_bytes=30_000, delete_records_index=15)
    idx.upsert(vectors=_vecs(10, pad=2000), namespace="a")  # ~21 KB
    with pytest.raises(RateLimitError, match="upsert_bytes rate of 30000 per second"):
        idx.upsert(vectors=_vecs(10, "b", pad=2000), namespace="a")
    idx.delete(ids=[f"r{i}" for i in range(10)], namespace="a")
    pinecone_emu.seed("idx", [(f"z{i}", [1.0, 0, 0, 0], None, None) for i in range(10)], namespace="other")
    with pytest.raises(RateLimitError, match="delete_records_index rate of 15 per second for index"):
        idx.delete(ids=[f"z{i}" for i in range(10)], namespace="other")  # another namespace
