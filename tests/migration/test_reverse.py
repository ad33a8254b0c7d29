"""Verification independent of the transform (issue 19, item 4): target records mapped back
through the reverse plan and compared with the raw source records.

The planted bugs below live in the forward transform, so the migration writes them and
"target == map(source)" still holds: only the way back can tell.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import replace

import numpy as np
import pytest

import vmkit.planning.transform as transform
from vmkit import TargetSpec, connect
from vmkit.connectors.memory import MemoryConnector
from vmkit.core.ids import ID_KIND_KEY
from vmkit.core.records import RecordBatch
from vmkit.migration.reverse import expected_target_id, reverse_check, to_source_terms
from vmkit.migration.validate import validate_sample
from vmkit.migration.verification import verify
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import map_batch


def make_source(ids_by_ns: dict[str, list], dim: int = 8, meta=None, name: str = "src") -> MemoryConnector:
    conn = MemoryConnector(f"memory://{name}")
    conn.create(TargetSpec(name, dim, "dot"))
    rng = np.random.default_rng(2)
    for ns, ids in ids_by_ns.items():
        n = len(ids)
        metas = [meta(k) if meta else {"title": f"t{k}", "lang": ["en", "de"][k % 2], "k": k}
                 for k in range(n)]
        conn.upsert(RecordBatch(list(ids), rng.standard_normal((n, dim)), metas, namespace=ns))
    return conn


def copy(source, target, **plan_opts):
    """Plan, create and write the target batch by batch; the (raw, written) pairs are what
    sampled validation sees."""
    the_plan = make_plan(source, target, sample=0, **plan_opts)
    target.create(the_plan.target)
    pairs, cursor = [], None
    while True:
        raw, cursor = source.scan(cursor, 40)
        written = map_batch(raw, the_plan).batch
        target.upsert(written)
        pairs.append((raw, written))
        if cursor is None:
            return the_plan, pairs


def sampled(pairs, target, the_plan, with_source=True):
    stats = [validate_sample(w, target, the_plan, source_batch=r if with_source else None) for r, w in pairs]
    return sum(s.failures for s in stats), sum(s.reverse_failures for s in stats), sum(s.reverse_checked for s in stats)


class JsonTarget(MemoryConnector):
    """A memory store with a JSON document store's limits: no nulls, nested objects, mixed
    lists, ints past 2**53 or Python dates."""

    def __init__(self, uri):
        super().__init__(uri)
        self.capabilities = replace(self.capabilities, metadata_null=False, metadata_nested=False,
                                    metadata_mixed_lists=False, metadata_big_ints=False,
                                    metadata_objects=False)


def rich_meta(k: int) -> dict:
    return {"title": f"t{k}", "none": None, "big": 2**60 + k, "when": datetime.date(2024, 1, 1 + k % 28),
            "at": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
            "obj": {"a": {"b": k, "c": [1, "x"]}}, "mixed": [1, "two", 3.5], "tags": ["a", "b"],
            "small": k, "f": 0.25 * k}


FAITHFUL = {
    "same shape": ({"": [f"r{i}" for i in range(60)], "ns1": [f"r{i}" for i in range(30)]},
                   "memory://dst", {}),
    "int ids to a string-only target": ({"": list(range(70))}, "memory://dst?ids=string", {}),
    "int ids as uuid5": ({"": list(range(70))}, "memory://dst?ids=string", {"uint_ids": "uuid5"}),
    "namespaces folded into a field": ({"a": [f"r{i}" for i in range(50)], "b": [f"r{i}" for i in range(50)],
                                        "": ["r1", 5]}, "memory://dst?ids=uuid", {"namespace_policy": "field"}),
    "namespaces folded, string ids": ({"a": ["x", "y"], "b": ["x", 3]}, "memory://dst?ids=string",
                                      {"namespace_policy": "field"}),
    "renames": ({"": [f"r{i}" for i in range(50)]}, "memory://dst",
                {"renames": {"title": "headline", "lang": "language"}}),
    "namespaces dropped": ({"a": ["p", "q"], "b": ["r"]}, "memory://dst", {"namespace_policy": "drop"}),
}


@pytest.mark.parametrize("name", list(FAITHFUL))
def test_a_faithful_copy_maps_back_to_its_source(name):
    ids, target_uri, opts = FAITHFUL[name]
    source = make_source(ids)
    target = connect(target_uri)
    uint_ids = opts.pop("uint_ids", None)
    the_plan, pairs = copy(source, target, **opts) if not uint_ids else _copy_uuid5(source, target)
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    assert result.passed, str(result)
    assert result.reverse is not None and result.reverse.checked == sum(len(v) for v in ids.values())
    failures, reverse_failures, checked = sampled(pairs, target, the_plan)
    assert (failures, reverse_failures) == (0, 0) and checked == result.reverse.checked
    if name == "namespaces dropped":
        assert "namespaces dropped by the plan: not compared" in result.reverse.notes


def _copy_uuid5(source, target):
    the_plan = make_plan(source, target, sample=0)
    the_plan.uint_ids = "uuid5"
    target.create(the_plan.target)
    raw, _ = source.scan(None, 1000)
    written = map_batch(raw, the_plan).batch
    assert all(isinstance(i, str) and len(i) == 36 for i in written.ids)
    target.upsert(written)
    return the_plan, [(raw, written)]


@pytest.mark.parametrize("nested_policy", ["json", "flatten"])
def test_announced_lossy_changes_compare_equal_after_their_reverse(nested_policy):
    """Nulls dropped, ints past 2**53 as text, dates as ISO text, nested objects and mixed
    lists as JSON text (or flattened): equal after the documented reverse."""
    source = make_source({"": list(range(30))}, meta=rich_meta)
    target = JsonTarget("memory://dst?ids=uint,string,uuid")
    the_plan, pairs = copy(source, target, nested_policy=nested_policy)
    stored = target.fetch([3])
    assert stored.metadata[0]["big"] == str(2**60 + 3) and "none" not in stored.metadata[0]
    assert stored.metadata[0]["when"] == "2024-01-04"
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    assert result.passed, str(result)
    assert any("null" in n for n in result.reverse.notes)
    assert (nested_policy == "flatten") == any("flattened" in n for n in result.reverse.notes)
    assert sampled(pairs, target, the_plan)[:2] == (0, 0)


def test_a_changed_value_fails_the_way_back_too():
    source = make_source({"": list(range(30))}, meta=rich_meta)
    target = JsonTarget("memory://dst")
    the_plan, pairs = copy(source, target)
    rec = target.fetch([4])
    rec.metadata[0]["big"] = str(2**60 + 5)
    target.upsert(rec)
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    assert [k for k, _ in result.reverse_mismatched] == [("", 4)]
    assert "'big' differs" in result.reverse_mismatched[0][1]


# -- planted bugs in the forward transform ----------------------------------------------------

def _forward_still_holds(result):
    assert not result.missing and not result.extra and not result.mismatched and not result.count_mismatches, str(result)


def test_a_bug_in_the_id_mapping_fails(monkeypatch):
    """Int ids that travel as decimal text lose their kind marker: "7" comes back a string."""
    real = transform.to_target_id

    def buggy(rid, accepted, scope="", uint_ids="decimal"):
        tid, extra = real(rid, accepted, scope, uint_ids)
        extra.pop(ID_KIND_KEY, None)
        return tid, extra

    monkeypatch.setattr(transform, "to_target_id", buggy)
    source = make_source({"": list(range(60))})
    target = connect("memory://dst?ids=string")
    the_plan, pairs = copy(source, target)
    assert sampled(pairs, target, the_plan, with_source=False)[0] == 0  # the forward check is fooled
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    _forward_still_holds(result)
    assert not result.passed
    assert len(result.reverse_mismatched) == 60
    assert result.reverse_mismatched[0] == (("", "0"), "maps back to '0', which the source batch does not hold")
    failures, reverse_failures, _ = sampled(pairs, target, the_plan)
    assert failures == reverse_failures == 60


def test_a_bug_in_the_renames_fails(monkeypatch):
    """The transform swaps two planned renames: title -> language, lang -> headline."""
    real = transform.map_metadata

    def buggy(meta, plan, caps, changes):
        return real(meta, dataclasses.replace(plan, renames={"title": "language", "lang": "headline"}), caps, changes)

    monkeypatch.setattr(transform, "map_metadata", buggy)
    source = make_source({"": [f"r{i}" for i in range(50)]})
    target = connect("memory://dst")
    the_plan, pairs = copy(source, target, renames={"title": "headline", "lang": "language"})
    assert sampled(pairs, target, the_plan, with_source=False)[0] == 0
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    _forward_still_holds(result)
    assert not result.passed and len(result.reverse_mismatched) == 50
    assert "metadata 'title' differs" in result.reverse_mismatched[0][1]
    failures, reverse_failures, _ = sampled(pairs, target, the_plan)
    assert failures == reverse_failures == 50


def test_a_bug_in_the_namespace_folding_fails(monkeypatch):
    """Namespaces folded into a field, but the target id no longer derives from the namespace:
    equal ids in two namespaces would overwrite each other. The ids here differ, so nothing is
    lost yet and the forward check passes."""
    real = transform.to_target_id
    monkeypatch.setattr(transform, "to_target_id",
                        lambda rid, accepted, scope="", uint_ids="decimal": real(rid, accepted, "", uint_ids))
    source = make_source({"a": [f"a{i}" for i in range(40)], "b": [f"b{i}" for i in range(40)]})
    target = connect("memory://dst?ids=uuid")
    the_plan, pairs = copy(source, target, namespace_policy="field")
    assert sampled(pairs, target, the_plan, with_source=False)[0] == 0
    result = verify(source, target, the_plan, scan_size=40, reverse=True)
    _forward_still_holds(result)
    assert not result.passed and len(result.reverse_mismatched) == 80
    key, why = result.reverse_mismatched[0]
    assert key == ("a", "a0") and "is not the one the id scheme gives 'a0' in namespace 'a'" in why
    failures, reverse_failures, _ = sampled(pairs, target, the_plan)
    assert failures == reverse_failures == 80


def test_namespace_field_written_wrong_fails():
    """A record whose namespace field names another namespace maps back there."""
    source = make_source({"a": ["x"], "b": ["y"]})
    target = connect("memory://dst?ids=uuid")
    the_plan, pairs = copy(source, target, namespace_policy="field")
    raw, written = pairs[0]
    got = target.fetch(written.ids)
    got.metadata[0]["namespace"] = "b"
    check = reverse_check(got, raw, the_plan)
    assert check.failures and "is not the one the id scheme gives" in check.failures[0][2]


def test_the_id_scheme_is_restated_independently():
    source = make_source({"": [1]})
    the_plan = make_plan(source, connect("memory://dst?ids=uuid"), sample=0)
    assert expected_target_id("", 7, the_plan) == transform.to_target_id(7, frozenset({"uuid"}))[0]
    records = to_source_terms(RecordBatch(["7"], np.zeros((1, 8)), [{ID_KIND_KEY: "uint"}]), the_plan)
    assert records[0].id == 7 and records[0].metadata == {}


def test_a_fingerprint_sink_cannot_be_mapped_back(caplog):
    source = make_source({"": list(range(10))})
    target = connect("sink://rev")
    the_plan, _ = copy(source, target)
    result = verify(source, target, the_plan, reverse=True)
    assert result.passed and result.reverse is None
    assert "reverse check not possible" in caplog.text


def test_a_qdrant_copy_of_rich_records_maps_back(tmp_path):
    """Through a real engine: the embedded Qdrant, uuid/int ids, nested metadata, cosine."""
    from vmkit import Migration
    from vmkit.connectors.datasets import fill

    src = f"qdrant://{tmp_path}/src?collection=docs"
    dst = f"qdrant://{tmp_path}/dst?collection=docs"
    fill(src, 120, 8, metric="cosine")
    m = Migration.create(src, dst, migration_id="q", state=tmp_path / "s.db", verify=False)
    m.run()
    with connect(src) as source, connect(dst) as target:
        result = verify(source, target, m.plan, reverse=True, scan_size=50)
        assert result.passed and result.reverse.checked == 120, str(result)
    m.close()
