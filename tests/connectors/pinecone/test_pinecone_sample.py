"""Sampling a Pinecone index for its profile: queries and a fetch of the ids they find, not a
read of the whole index (real SDK against the emulator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit.connectors import connect
from vmkit.connectors.pinecone.connector import ListUnsupported
from vmkit.planning.schema import infer_schema

pytest.importorskip("pinecone")

DIM = 8
SPACES = {"": 3000, "big": 6000, "tiny": 40}


def _seed(pinecone_emu: PineconeEmulator, index: str, metric: str, pod: bool = False,
          spaces: dict[str, int] = SPACES) -> None:
    pinecone_emu.create_index(index, DIM, metric, pod=pod)
    for k, (ns, n) in enumerate(spaces.items()):
        vecs = np.random.default_rng(k).standard_normal((n, DIM)).astype(np.float32)
        pinecone_emu.seed(index, [(f"{ns or 'dflt'}-{i:05d}", vecs[i], {"i": i, "ns": ns}, None)
                         for i in range(n)], namespace=ns)


def _deciles(ids: list[str], n: int) -> set[int]:
    return {int(rid.rsplit("-", 1)[1]) * 10 // n for rid in ids}


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_a_big_index_is_sampled_with_queries_not_read(pinecone_emu: PineconeEmulator, metric: str) -> None:
    _seed(pinecone_emu, "src", metric)
    pinecone_emu.rates.limits["query"] = 20  # lowered on both sides: vmkit paces its queries too
    conn = connect("pinecone://src?rate_limits=query:20")
    before = len(pinecone_emu.log)
    batches = conn.sample(300, seed=7)
    asked = pinecone_emu.log[before:]

    by_ns = {b.namespace: b for b in batches}
    assert not [r for r in asked if r.op == "list"], "a sample must not list the index"
    # The locating query of each namespace returns up to 10 whole records: 10, 10 and 1 here.
    # Only the rest are fetched.
    assert sum(r.records for r in asked if r.op == "fetch") == sum(map(len, batches)) - 21
    assert pinecone_emu.rates.refused == 0
    # By share: 300 of 9,040 records -> 100 of the default namespace, 199 of "big", 1 of
    # "tiny" (points may find fewer: their neighbourhoods overlap).
    assert 90 <= len(by_ns[""]) <= 100 and 180 <= len(by_ns["big"]) <= 199
    assert len(by_ns["tiny"]) == 1
    for ns, batch in by_ns.items():
        assert len(set(batch.ids)) == len(batch.ids)
        assert all(rid.startswith(f"{ns or 'dflt'}-") for rid in batch.ids)
        assert batch.vectors.shape == (len(batch), DIM)
        assert all(m["ns"] == ns for m in batch.metadata)
    # Ids are unrelated to vectors here, so a spread sample reaches every tenth of them; the
    # first pages of a listing would reach one.
    assert _deciles(by_ns["big"].ids, 6000) == set(range(10))
    assert conn.sample(300, seed=7)[1].ids == by_ns["big"].ids  # a seed gives one sample


def test_a_small_index_is_read_whole(pinecone_emu: PineconeEmulator) -> None:
    _seed(pinecone_emu, "small", "cosine", spaces={"": 120, "b": 30})
    batches = connect("pinecone://small").sample(2000)
    got = sorted((b.namespace, rid) for b in batches for rid in b.ids)
    assert got == sorted([("", f"dflt-{i:05d}") for i in range(120)]
                         + [("b", f"b-{i:05d}") for i in range(30)])
    assert not pinecone_emu.requests("query")


def test_one_namespace_is_sampled_alone(pinecone_emu: PineconeEmulator) -> None:
    _seed(pinecone_emu, "src", "cosine")
    batches = connect("pinecone://src?namespace=big").sample(100)
    assert {b.namespace for b in batches} == {"big"}
    assert 90 <= sum(map(len, batches)) <= 100
    assert {r.namespace for r in pinecone_emu.requests("query")} == {"big"}


def test_namespaces_are_sampled_at_once(pinecone_emu: PineconeEmulator) -> None:
    """A multi-tenant index of 40 namespaces: each gives its share, in whole records from the
    query that places its points (no fetch: fetch is limited per index), several namespaces
    wait on their round trips at once, and the sample is still the seed's alone."""
    spaces = {f"t{k:02d}": 60 for k in range(40)}
    _seed(pinecone_emu, "tenants", "cosine", spaces=spaces)
    pinecone_emu.faults.latency_ms = 20
    since = len(pinecone_emu.log)
    batches = connect("pinecone://tenants").sample(400, seed=5)
    asked = [r for r in pinecone_emu.log[since:] if r.op in ("query", "fetch")]
    pinecone_emu.faults.latency_ms = 0
    assert [b.namespace for b in batches] == sorted(spaces)  # in namespace order, 10 each
    assert all(len(b) == 10 and {m["ns"] for m in b.metadata} == {b.namespace} for b in batches)
    assert {r.namespace for r in asked if r.op == "query"} == set(spaces)
    assert not [r for r in asked if r.op == "fetch"]  # a share of 10 comes whole with its query
    for k, b in enumerate(batches):  # exactly as stored, as a fetch would give them
        seeded = np.random.default_rng(k).standard_normal((60, DIM)).astype(np.float32)
        rows = [int(rid.rsplit("-", 1)[1]) for rid in b.ids]
        assert np.array_equal(b.vectors, seeded[rows]) and [m["i"] for m in b.metadata] == rows
    at_once = max(len({o.namespace for o in asked if o.started <= r.started < o.ended}) for r in asked)
    assert at_once > 1
    again = connect("pinecone://tenants").sample(400, seed=5)
    assert [b.ids for b in again] == [b.ids for b in batches]


def test_a_failing_fetch_is_retried(pinecone_emu: PineconeEmulator, pinecone_sdk_sleeps: list) -> None:
    """The ids found are fetched with the same retries as the queries: a fetch that fails past
    the SDK's own retries (4 attempts) does not fail the sample."""
    _seed(pinecone_emu, "src", "cosine")
    pinecone_emu.faults.inject(503, times=5, op="fetch")
    batches = connect("pinecone://src?namespace=big").sample(100, seed=1)
    assert 90 <= sum(map(len, batches)) <= 100
    assert pinecone_emu.faults.injected == 5 and len(pinecone_sdk_sleeps) >= 3


def test_pod_index_sampling(pinecone_emu: PineconeEmulator, tmp_path: Path) -> None:
    """A pod index cannot list: planning says so at once, as the scan would. With an ids file,
    the sample comes from the file's ids (the records the migration will read), fetched."""
    _seed(pinecone_emu, "pods", "cosine", pod=True)
    with pytest.raises(ListUnsupported, match="ids_file="):
        connect("pinecone://pods").sample(300)
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"big\tbig-{i:05d}\n" for i in range(6000)) + "\n")
    before = len(pinecone_emu.log)
    batches = connect(f"pinecone://pods?ids_file={ids}").sample(300, seed=3)
    assert [(b.namespace, len(b)) for b in batches] == [("big", 300)]
    assert _deciles(batches[0].ids, 6000) == set(range(10))
    asked = [r for r in pinecone_emu.log[before:] if r.plane != "control"]
    assert {r.op for r in asked} == {"fetch"} and sum(r.records for r in asked) == 300


def test_infer_schema_profiles_the_sample(pinecone_emu: PineconeEmulator) -> None:
    _seed(pinecone_emu, "src", "dotproduct")
    schema = infer_schema(connect("pinecone://src"), sample=500)
    assert schema.total == 9040 and 450 <= schema.sampled <= 500
    assert set(schema.fields) == {"i", "ns"} and schema.dimension == DIM
    assert not pinecone_emu.requests("list")
