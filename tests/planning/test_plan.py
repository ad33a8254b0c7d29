"""plan(): plain data that round-trips through JSON, a hash of what changes the data, and
errors/warnings decided from the target's Capabilities before the first write."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest

from vmkit import TargetSpec, connect
from vmkit.connectors.base import Capabilities
from vmkit.connectors.batching import record_sizes
from vmkit.core.errors import PlanError
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan, PlanWarning
from vmkit.planning.planner import plan as make_plan


def mem_source(name: str = "src", dim: int = 8, metric: str = "cosine", namespaces=("",), n: int = 5):
    conn = connect(f"memory://{name}")
    conn.create(TargetSpec(name, dim, metric))
    rng = np.random.default_rng(0)
    for ns in namespaces:
        conn.upsert(RecordBatch(list(range(n)), rng.standard_normal((n, dim)), [{"i": i} for i in range(n)],
                                namespace=ns))
    return conn


def full_plan(**kw) -> Plan:
    src = mem_source(namespaces=("", "a"))
    return make_plan(src, connect("memory://dst?ids=uuid,uint&normalize=1"), batch_size=3,
                     nested_policy="flatten", namespace_policy="field", namespace_field="tenant",
                     renames={"old": "new"}, drop_fields=["secret"], **kw)


# -- plain data ------------------------------------------------------------------------------

def test_json_round_trip_is_equal():
    p = full_plan()
    assert p.warnings  # something to carry
    q = Plan.from_json(p.to_json())
    assert q == p
    assert q.to_json() == p.to_json()
    assert q.hash == p.hash
    assert isinstance(q.target, TargetSpec) and all(isinstance(w, PlanWarning) for w in q.warnings)
    assert q.capabilities == p.capabilities
    assert isinstance(q.capabilities, Capabilities)
    assert q.capabilities.id_kinds == frozenset({"uuid", "uint"})


def test_plan_content():
    p = full_plan()
    assert p.source_uri == "memory://src" and p.target_uri == "memory://dst?ids=uuid,uint&normalize=1"
    assert p.target == TargetSpec("dst", 8, "cosine", False, fields={"i": "int"})
    assert p.create_target is True
    assert (p.batch_size, p.nested_policy, p.namespace_policy, p.namespace_field) == (3, "flatten", "field", "tenant")
    assert p.renames == {"old": "new"} and p.drop_fields == ["secret"]
    assert p.source_count == 10 and p.estimated_batches == 4
    assert p.errors == []


def test_hash_follows_data_changes_only():
    p = full_plan()
    base = p.hash
    assert len(base) == 16 and int(base, 16) >= 0

    renamed = Plan.from_json(p.to_json())
    renamed.renames = {"old": "other"}
    assert renamed.hash != base
    more = Plan.from_json(p.to_json())
    more.renames = {"old": "new", "x": "y"}
    assert more.hash != base
    dropped = Plan.from_json(p.to_json())
    dropped.drop_fields = []
    assert dropped.hash != base
    nested = Plan.from_json(p.to_json())
    nested.nested_policy = "json"
    assert nested.hash != base
    caps = Plan.from_json(p.to_json())
    caps.caps["metadata_null"] = False
    assert caps.hash != base

    warned = Plan.from_json(p.to_json())
    warned.warnings = warned.warnings + [PlanWarning("x", "new warning", "policy")]
    assert warned.hash == base
    unwarned = Plan.from_json(p.to_json())
    unwarned.warnings = []
    assert unwarned.hash == base
    counted = Plan.from_json(p.to_json())
    counted.source_count = 12345
    counted.create_target = False
    assert counted.hash == base


def test_plans_stored_before_uint_ids_existed_keep_their_hash():
    p = full_plan()
    assert p.uint_ids == "decimal"
    old = orjson.loads(p.to_json())
    del old["uint_ids"]
    assert Plan.from_json(orjson.dumps(old).decode()).hash == p.hash
    p.uint_ids = "uuid5"
    assert p.hash != Plan.from_json(orjson.dumps(old).decode()).hash


@pytest.mark.parametrize("ids,target,policy", [
    ([7, "7", "doc"], "memory://dst?ids=string", "uuid5"),
    ([7, "0f8fad5b-d9cb-469f-a165-70867728950e"], "memory://dst?ids=string", "decimal"),
    ([7, "7"], "memory://dst?ids=uint,string", "decimal"),
    ([7, "7"], "memory://dst?ids=uuid", "decimal")], ids=["twins", "qdrant-kinds", "takes-ints", "uuid-only"])
def test_ints_travel_as_uuid5_only_where_they_could_meet_string_ids(ids, target, policy):
    src = connect("memory://mixed")
    src.create(TargetSpec("mixed", 4, "cosine"))
    src.upsert(RecordBatch(ids, np.ones((len(ids), 4)), [{} for _ in ids]))
    p = make_plan(src, connect(target))
    assert p.uint_ids == policy
    notes = [w for w in p.warnings if w.field == "id" and "uint" in w.message]
    if policy == "uuid5":
        assert len(notes) == 1 and "collide" in notes[0].message and "uuid5" in notes[0].policy


def test_str_names_target_and_warnings():
    p = full_plan()
    text = str(p)
    assert "memory://src -> memory://dst" in text
    assert "dim=8 metric=cosine" in text
    assert "renames: old->new" in text and "field 'tenant'" in text
    for w in p.warnings:
        assert str(w) in text


def test_estimates_scale_the_sample_to_the_source():
    """Bytes on the wire: the sampled records' sizes, per record, times the source's count
    (here the sample is the whole source, so the figure is exact). Write requests: one a
    batch, more when the bytes need them. No read time: a sample says nothing of a scan's."""
    src = mem_source(n=40)
    sizes = record_sizes(src.scan(None, 100)[0], connect("memory://dst").capabilities)
    p = make_plan(src, connect("memory://dst"), batch_size=10)
    assert p.estimates == {"batches": 4.0, "bytes": int(sizes.sum()), "write_requests": 4.0}
    small = make_plan(src, connect(f"memory://dst2?max_bytes={int(sizes.sum()) // 6}"), batch_size=10)
    assert small.estimates["write_requests"] == 7.0
    assert f"~{int(sizes.sum()) / 1e6:.1f} MB on the wire in ~4 write requests" in str(p)
    assert "s at the" not in str(p)


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["memory://dst", "qdrant"])
def test_unsupported_metric_is_an_error(tmp_path, target):
    src = mem_source(metric="hamming")
    uri = f"qdrant://{tmp_path}/q?collection=c" if target == "qdrant" else target
    with connect(uri) as dst:
        p = make_plan(src, dst)
    errs = [w for w in p.errors if w.field == "metric"]
    assert len(errs) == 1 and errs[0].severity == "error" and "hamming" in errs[0].message


def test_dimension_mismatch_with_existing_target_is_an_error():
    src = mem_source(dim=8)
    dst = connect("memory://dst")
    dst.create(TargetSpec("dst", 16, "cosine"))
    p = make_plan(src, dst)
    assert p.create_target is False
    errs = [w for w in p.errors if w.field == "vector"]
    assert len(errs) == 1 and "16" in errs[0].message and "8" in errs[0].message
    assert str(errs[0]).startswith("error: vector:")


def test_metric_mismatch_with_existing_target_is_an_error():
    src = mem_source(metric="cosine")
    dst = connect("memory://dst")
    dst.create(TargetSpec("dst", 8, "dot"))
    p = make_plan(src, dst)
    errs = [w for w in p.errors if w.field == "metric"]
    assert len(errs) == 1 and "dot" in errs[0].message and "cosine" in errs[0].message


def test_matching_existing_target_has_no_errors():
    src = mem_source()
    dst = connect("memory://dst")
    dst.create(TargetSpec("dst", 8, "cosine"))
    p = make_plan(src, dst)
    assert p.errors == [] and p.create_target is False


def test_refusals():
    src = mem_source()
    dst = connect("memory://dst")
    with pytest.raises(PlanError, match="nested_policy"):
        make_plan(src, dst, nested_policy="explode")
    with pytest.raises(PlanError, match="batch_size"):
        make_plan(src, dst, batch_size=0)
    with pytest.raises(PlanError, match="does not exist"):
        make_plan(connect("memory://missing"), dst)


def test_batch_size_over_the_target_limit_is_a_warning():
    src = mem_source()
    p = make_plan(src, connect("memory://dst?max_records=100"), batch_size=500)
    ws = [w for w in p.warnings if w.field == "batch_size"]
    assert len(ws) == 1 and ws[0].severity == "warning" and "100" in ws[0].message


# -- namespaces ------------------------------------------------------------------------------

def test_namespace_warning_when_target_has_no_namespaces(tmp_path):
    src = mem_source(namespaces=("", "tenant-a", "tenant-b"))
    with connect(f"qdrant://{tmp_path}/q?collection=c") as dst:
        assert dst.capabilities.namespaces is False
        p = make_plan(src, dst)
    assert p.namespace_policy == "field"
    ws = [w for w in p.warnings if w.field == "namespace"]
    assert len(ws) == 1 and ws[0].severity == "warning"
    assert "no namespaces" in ws[0].message and "'namespace'" in ws[0].policy
    assert p.errors == []


def test_no_namespace_warning_without_source_namespaces(tmp_path):
    src = mem_source(namespaces=("",))
    with connect(f"qdrant://{tmp_path}/q?collection=c") as dst:
        p = make_plan(src, dst)
    assert p.namespace_policy == "field"
    assert [w for w in p.warnings if w.field == "namespace"] == []


def test_target_with_namespaces_keeps_them():
    src = mem_source(namespaces=("", "a"))
    p = make_plan(src, connect("memory://dst"))
    assert p.namespace_policy == "keep"
    assert [w for w in p.warnings if w.field == "namespace"] == []


def test_cosine_normalizing_target_warns():
    p = make_plan(mem_source(), connect("memory://dst?normalize=1"))
    assert any(w.field == "vector" and "unit vectors" in w.message for w in p.warnings)
    q = make_plan(connect("memory://src"), connect("memory://dst2"))
    assert not any(w.field == "vector" for w in q.warnings)


def test_keep_on_target_without_namespaces_is_an_error(tmp_path):
    src = mem_source(namespaces=("a", "b"))
    with connect(f"qdrant://{tmp_path}/q?collection=c") as dst:
        p = make_plan(src, dst, namespace_policy="keep")
    assert any(w.field == "namespace" for w in p.errors)


def test_unknown_namespace_policy_is_refused():
    with pytest.raises(PlanError, match="namespace_policy"):
        make_plan(mem_source(), connect("memory://dst"), namespace_policy="bogus")


def test_plan_is_a_dataclass_of_plain_data():
    p = full_plan()
    d = dataclasses.asdict(p)
    assert set(d) >= {"source_uri", "target_uri", "target", "caps", "renames", "warnings"}
    assert isinstance(d["caps"]["id_kinds"], list)


def test_target_spec_names_each_sampled_field_with_its_kind_renamed_and_outside_the_hash():
    src = connect("memory://kinds")
    src.create(TargetSpec("kinds", 4, "cosine"))
    metas = [{"n": 1, "x": 0.5, "mixed": 1, "s": "a", "b": True, "o": {"k": 1}, "big": 2**60, "old": "v"},
             {"n": None, "x": 2, "mixed": "one", "s": "b", "b": False, "o": [1], "big": 3, "old": "w"}]
    src.upsert(RecordBatch([1, 2], np.ones((2, 4), np.float32), metas))
    p = make_plan(src, connect("memory://kinds-dst"), renames={"old": "new"})
    assert p.target.fields == {"n": "int", "x": "float", "mixed": "json", "s": "str", "b": "bool",
                               "o": "json", "big": "json", "new": "str"}
    again = Plan.from_json(p.to_json())
    assert again.target.fields == p.target.fields
    again.target = dataclasses.replace(again.target, fields={})
    assert again.hash == p.hash


def test_a_key_named_like_a_vector_is_renamed_where_vectors_are_fields():
    """Milvus keeps each named vector in a field beside the dynamic keys: a metadata key
    'title' next to a vector 'title' must move, and the plan says so."""
    src = connect("memory://vecnames")
    src.create(TargetSpec("vecnames", 4, "dot", vector_name="body", extra_vectors={"title": {"dimension": 2, "metric": "dot"}}))
    src.upsert(RecordBatch(["a"], np.ones((1, 4), np.float32), [{"title": "t", "x": 1}],
                           named={"title": np.ones((1, 2), np.float32)}, vector_name="body"))
    plain = connect("memory://vecnames-dst")
    assert make_plan(src, plain).renames == {}
    fields = connect("memory://vecnames-dst")
    fields.capabilities = dataclasses.replace(fields.capabilities, vector_names_reserved=True)
    p = make_plan(src, fields)
    assert set(p.renames) == {"title"} and p.renames["title"] not in ("title", "body", "x")
    assert any(w.field == "metadata.title" and "renamed" in w.policy for w in p.warnings)


def test_namespaces_sharing_one_id_space_are_kept_apart_by_a_field_unless_asked():
    """Milvus partitions share one primary key space: "x" in namespaces a and b would be one
    record there, so the plan scopes ids by namespace; asked to keep them, it warns."""
    src = mem_source("shared-ids", namespaces=("a", "b"))
    shared = connect("memory://shared-dst")
    shared.capabilities = dataclasses.replace(shared.capabilities, namespace_ids_shared=True)
    auto = make_plan(src, shared)
    assert auto.namespace_policy == "field"
    assert any("share one id space" in w.message for w in auto.warnings)
    kept = make_plan(src, shared, namespace_policy="keep")
    assert kept.namespace_policy == "keep" and not kept.errors
    assert any("overwrite" in w.message for w in kept.warnings)
    assert make_plan(src, connect("memory://other-dst")).namespace_policy == "keep"


def test_only_lists_below_the_top_count_as_uneven():
    from vmkit.planning.schema import has_uneven_list

    assert not has_uneven_list([1, None]) and not has_uneven_list([1, "a"])  # judged as list[mixed]
    assert has_uneven_list({"a": [1, None]}) and has_uneven_list([[1, "a"]]) and has_uneven_list({"a": [1, {"b": 2}]})
    assert not has_uneven_list({"a": [1, 2], "b": {"c": ["x"]}})
