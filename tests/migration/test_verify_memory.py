"""Verification memory (issue 19, item 8): the target side in a compact digest table of at most
40 bytes a record (counted by its arrays' nbytes, not timed), and verification still naming
every missing, extra and mismatched id."""

from __future__ import annotations

import numpy as np
from copying import copy_through

from vmkit import connect
from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import RecordBatch
from vmkit.migration.digest_table import (
    ABSENT,
    DIFFERS,
    MATCHED,
    DigestTable,
    digest_heads,
    extra_keys,
    key_hashes,
)
from vmkit.migration.verification import verify
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import map_batch


def synthetic_pairs(n: int):
    source = connect(f"synthetic://mem?n={n}&dim=8&seed=5")
    cursor = None
    while True:
        batch, cursor = source.scan(cursor, 5000)
        yield from batch_digests(batch)
        if cursor is None:
            return


def test_the_digest_table_holds_at_most_40_bytes_a_record():
    n = 200_000
    table = DigestTable.from_digests(synthetic_pairs(n))
    assert len(table) == n
    assert table.nbytes / n <= 40, table.nbytes / n
    assert table.nbytes == 17 * n  # 8-byte key hash, 8-byte digest head, 1-byte seen flag
    assert np.all(table.keys[:-1] <= table.keys[1:])


def test_match_tells_matched_differing_and_absent_keys():
    pairs = list(synthetic_pairs(1000))
    table = DigestTable.from_digests(pairs)
    keys = [k for k, _ in pairs[:3]] + [("", 5000)]
    digests = [pairs[0][1], pairs[0][1], pairs[2][1], pairs[3][1]]
    status = table.match(key_hashes(keys), digest_heads(digests))
    assert status.tolist() == [MATCHED, DIFFERS, MATCHED, ABSENT]
    unseen = table.unseen()
    assert len(unseen) == 997
    named = extra_keys(unseen, [[k for k, _ in pairs[i:i + 100]] for i in range(0, 1000, 100)])
    assert sorted(named, key=lambda k: k[1]) == [k for k, _ in pairs[3:]]


def test_a_shared_key_hash_looks_at_every_entry():
    table = DigestTable()
    table.keys = np.array([1, 7, 7, 9], np.uint64)
    table.digests = np.array([10, 70, 71, 90], np.uint64)
    table.seen = np.zeros(4, bool)
    status = table.match(np.array([7, 7, 9], np.uint64), np.array([71, 72, 90], np.uint64))
    assert status.tolist() == [MATCHED, DIFFERS, MATCHED]
    assert table.unseen().tolist() == [1]


def test_int_and_string_ids_hash_apart():
    assert key_hashes([("", 7)])[0] != key_hashes([("", "7")])[0]
    assert key_hashes([("a", 7)])[0] != key_hashes([("", 7)])[0]


def _sink_copy(n: int, name: str = "mem"):
    source = connect(f"synthetic://src?n={n}&dim=8&seed=5")
    target = connect(f"sink://{name}")
    return source, target, copy_through(source, target)


def test_verification_into_the_fingerprint_sink_names_every_problem():
    source, target, the_plan = _sink_copy(5000)
    assert verify(source, target, the_plan).passed
    target.delete([17, 4000])
    rng = np.random.default_rng(0)
    target.upsert(RecordBatch([10_000, 10_001], rng.standard_normal((2, 8)), [{"x": 1}, {"x": 2}]))
    target.upsert(RecordBatch([5], rng.standard_normal((1, 8)), [{"i": 5, "group": 5}]))  # another vector
    result = verify(source, target, the_plan)
    assert not result.passed
    assert result.extra == [("", 10_000), ("", 10_001)]
    # a sink cannot hand records back for the exact re-check: the suspects are named all the same
    assert result.missing == [("", 17), ("", 4000)]
    assert [k for k, _ in result.mismatched] == [("", 5)]
    assert "not re-checked: the target cannot return records" in result.mismatched[0][1]
    assert result.matched == 4997 and result.target_records == 5000


def test_suspects_past_the_bound_are_named_without_a_recheck():
    from vmkit.connectors.base import TargetSpec
    from vmkit.connectors.memory import MemoryConnector

    source = MemoryConnector("memory://src")
    source.create(TargetSpec("src", 4, "dot"))
    source.upsert(RecordBatch(list(range(50)), np.ones((50, 4)), [{"i": i} for i in range(50)]))
    target = connect("memory://dst")
    the_plan = make_plan(source, target, sample=0)
    target.create(the_plan.target)
    target.upsert(map_batch(source.scan(None, 100)[0], the_plan).batch)
    target.delete(list(range(0, 10)))
    changed = RecordBatch(list(range(10, 30)), np.full((20, 4), 2.0), [{"i": i} for i in range(10, 30)])
    target.upsert(changed)
    result = verify(source, target, the_plan, max_suspects=15)
    assert [k[1] for k in result.missing] == list(range(10))
    assert [k[1] for k, _ in result.mismatched] == list(range(10, 30))
    assert sum("not re-checked" in why for _, why in result.mismatched) == 15
    assert result.matched == 20


def test_pairs_sort_in_place_with_and_without_numba(monkeypatch):
    import vmkit.migration.digest_table as dt

    rng = np.random.default_rng(3)
    for have_numba in (True, False):
        monkeypatch.setattr(dt, "HAVE_NUMBA", have_numba)
        keys = rng.integers(0, 50, size=1000, dtype=np.uint64)  # many equal keys
        digests = keys * np.uint64(1000) + np.arange(1000, dtype=np.uint64) % 7
        before = sorted(zip(keys.tolist(), digests.tolist()))
        dt.sort_pairs(keys, digests)
        assert np.all(keys[:-1] <= keys[1:])
        assert sorted(zip(keys.tolist(), digests.tolist())) == before


def test_a_table_built_in_several_blocks_is_the_same_table(monkeypatch):
    import vmkit.migration.digest_table as dt

    pairs = list(synthetic_pairs(5500))
    one = DigestTable.from_digests(pairs)
    monkeypatch.setattr(dt, "_BLOCK", 1000)
    several = DigestTable.from_digests(pairs)
    assert len(several) == 5500 and several.nbytes == 17 * 5500
    assert np.array_equal(one.keys, several.keys) and np.array_equal(one.digests, several.digests)
    assert len(DigestTable.from_digests([])) == 0
