"""Bucket fingerprints: planted differences are found by id, and only those; repairs both ways."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash

from vmkit import TargetSpec, connect, plan
from vmkit.core.records import RecordBatch
from vmkit.planning.transform import map_batch
from vmkit.sync.sides import BUCKETS, Sides, bucket_of, compare, reverse_plan

from .helpers import fill


def sides(src_uri: str, dst_uri: str, metric: str = "dot") -> Sides:
    src, dst = connect(src_uri), connect(dst_uri)
    p = plan(src, dst)
    if dst.describe() is None:
        dst.create(p.target)
    b, _ = src.scan(None, 100_000)
    dst.upsert(map_batch(b, p).batch)
    return Sides(src, dst, p, lambda fn, *a: fn(*a))


def test_bucket_of_is_stable_and_keeps_id_kinds_apart():
    assert bucket_of(("", 7)) == xxhash.xxh64_intdigest(b"\x1fi:7") % BUCKETS == 239  # no per-run seed
    assert (bucket_of(("", "7")), bucket_of(("a", 7))) == (201, 83)  # kind and namespace count
    assert len({bucket_of(("", i)) for i in range(5000)}) == BUCKETS


def test_planted_differences_are_found_by_id():
    fill("memory://src", 3000)
    s = sides("memory://src", "memory://dst")
    assert compare(s).buckets == 0 and compare(s).records == 3000
    dst = connect("memory://dst")
    b = dst.fetch([10, 20, 30, 40])
    b.vectors[0] *= 1.01  # scaled
    b.vectors[1] *= -1  # sign flip
    b.metadata[2] = {"v": "0", "i": 30}  # a type change
    b.metadata[3] = {"v": 0}  # a dropped key
    dst.upsert(b)
    dst.delete([50])
    dst.upsert(RecordBatch([99_999], np.ones((1, 8)), [{}]))
    diff = compare(s)
    assert set(diff.changed) == {("", 10), ("", 20), ("", 30), ("", 40)}
    assert diff.missing == {("", 50): ("", 50)} and diff.extra == [("", 99_999)]
    assert diff.buckets == len({bucket_of(k) for k in diff.keys()})
    s.repair(diff.keys(), "target")
    assert compare(s).buckets == 0


def test_normalizing_target_rounding_is_not_a_difference():
    fill("memory://src", 2000, metric="cosine")
    s = sides("memory://src", "memory://dst?normalize=1")
    diff = compare(s)
    assert diff.buckets > 0  # the target normalized with its own rounding: digests differ...
    assert diff.keys() == {}  # ...but the exact re-check (to 1e-6) finds no record that differs
    dst = connect("memory://dst?normalize=1")
    b = dst.fetch([5])
    b.vectors[0, 0] += 0.01
    dst.upsert(b)
    assert set(compare(s).changed) == {("", 5)}


def test_repair_toward_the_source_restores_original_ids():
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "dot"))
    src.upsert(RecordBatch(["a", "b", 3], np.eye(3, 8), [{"k": 1}, {"k": 2}, {"k": 3}]))
    s = sides("memory://src", "memory://dst?ids=uuid")
    s.reverse = reverse_plan(s.source, s.target, s.plan)
    dst = connect("memory://dst?ids=uuid")
    tid_b = s.target_key(("", "b"))[1]
    b = dst.fetch([tid_b])
    b.metadata[0]["k"] = 20
    dst.upsert(b)
    new = map_batch(RecordBatch(["c"], np.ones((1, 8)), [{"k": 4}]), s.plan).batch
    dst.upsert(new)
    dst.delete([s.target_key(("", 3))[1]])
    diff = compare(s)
    assert len(diff.keys()) == 3
    s.repair(diff.keys(), "source")
    got = src.fetch(["a", "b", "c", 3])
    assert got.ids == ["a", "b", "c"] and got.metadata == [{"k": 1}, {"k": 20}, {"k": 4}]
    assert compare(s).buckets == 0


@pytest.mark.parametrize("policy", ["keep", "field"])
def test_target_key_matches_the_transform(policy):
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "dot"))
    for ns in ("a", "b"):
        src.upsert(RecordBatch(["x", 1], np.ones((2, 8)), [{}, {}], namespace=ns))
    dst = connect("memory://dst?ids=uuid,uint")
    p = plan(src, dst, namespace_policy=policy)
    s = Sides(src, dst, p, lambda fn, *a: fn(*a))
    for ns in ("a", "b"):
        mapped = map_batch(src.fetch(["x", 1], ns), p).batch
        assert [s.target_key((ns, rid)) for rid in ("x", 1)] == [(mapped.namespace, t) for t in mapped.ids]


def test_a_rejected_duplicate_does_not_delete_its_kept_twin():
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "dot"))
    u = "550e8400-e29b-41d4-a716-446655440000"
    # the second record came back from an earlier migration: its original id is u again
    src.upsert(RecordBatch([u, "doc-1"], np.ones((2, 8)), [{"k": 1}, {"k": 2, "_vmkit_source_id": u}]))
    dst = connect("memory://dst?ids=uuid")
    s = Sides(src, dst, plan(src, dst), lambda fn, *a: fn(*a))
    dst.create(s.plan.target)
    b, _ = src.scan(None, 10)
    assert s.write_rows(b) == 1
    assert len(dst.fetch([u])) == 1  # map_batch kept one twin; the other's rejection must not delete it
