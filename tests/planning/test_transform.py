"""map_batch(batch, plan): pure, and every record either mapped exactly or rejected with its
id, field and reason, so that read = written + rejected (reliability.md, "Rules that follow")."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import uuid

import numpy as np
import orjson
import pytest

from vmkit import TargetSpec, connect
from vmkit.core.ids import ID_KIND_KEY, ORIGINAL_ID_KEY, VMKIT_NAMESPACE
from vmkit.core.records import RecordBatch, Rejection, SparseVector
from vmkit.planning.plan import Plan
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import MappedBatch, map_batch

DIM = 4
UUID_TARGET = "memory://dst?ids=uuid,uint&normalize=1"


def source(dim: int = DIM, metric: str = "cosine", name: str = "src") -> str:
    conn = connect(f"memory://{name}")
    if conn.describe() is None:
        conn.create(TargetSpec(name, dim, metric))
    return f"memory://{name}"


def build_plan(target: str = UUID_TARGET, *, dim: int = DIM, metric: str = "cosine", **kw) -> Plan:
    return make_plan(connect(source(dim, metric)), connect(target), **kw)


def restrictive(p: Plan, **caps) -> Plan:
    """Pinecone-like metadata rules on top of a plan (a Plan is plain data)."""
    p.caps.update({"metadata_null": False, "metadata_nested": False, "metadata_big_ints": False,
                   "metadata_mixed_lists": False})
    p.caps.update(caps)
    return p


def vec(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(len(rows), DIM)


def u5(rid: str | int) -> str:
    """The documented mapping: uuid5 of the id qualified by its kind ("i:7", "s:doc-1")."""
    return str(uuid.uuid5(VMKIT_NAMESPACE, f"i:{rid}" if isinstance(rid, int) else f"s:{rid}"))


def balanced(batch: RecordBatch, out: MappedBatch) -> None:
    """read = written + rejected, and every input id is accounted for exactly once."""
    assert out.read == len(batch) + len(batch.rejected)
    assert len(out.batch) + len(out.rejected) == out.read
    assert len(out.source_ids) == len(out.batch)
    accounted = sorted(map(repr, list(out.source_ids) + [r.record_id for r in out.rejected]))
    assert accounted == sorted(map(repr, list(batch.ids) + [r.record_id for r in batch.rejected]))


def rejection_for(out: MappedBatch, rid) -> Rejection:
    found = [r for r in out.rejected if r.record_id == rid and type(r.record_id) is type(rid)]
    assert len(found) == 1, (rid, out.rejected)
    return found[0]


def one(meta: dict, p: Plan, rid="r1") -> MappedBatch:
    return map_batch(RecordBatch([rid], vec([1, 2, 3, 4]), [meta]), p)


# -- purity ----------------------------------------------------------------------------------

def _mixed_batch() -> RecordBatch:
    return RecordBatch(
        ids=["a", 5, "A" * 3, "dup", "dup", -1, "", "0F8FAD5B-D9CB-469F-A165-70867728950E", "nan"],
        vectors=vec([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2],
                    [1, 2, 3, 4], [4, 3, 2, 1], [0.5, 0.5, 0, 0], [np.nan, 1, 1, 1]),
        metadata=[
            {"nested": {"b": 1, "a": [1, {"z": None}]}, "n": None},
            {"big": 2**60, "tags": ["x", "y"], "mixed": [1, "a"]},
            {}, {"k": 1}, {"k": 2}, {}, {}, {"u": True}, {"f": 1.5},
        ],
        sparse=[SparseVector.of([3, 1], [0.5, 0.25])] + [None] * 8,
        namespace="ns1",
        rejected=[Rejection("pre", "vector has dimension 3, the target 4", "vector", "ns1")],
    )


@pytest.mark.parametrize("policy", ["json", "flatten", "drop"])
def test_map_batch_is_pure(policy):
    p = restrictive(build_plan(nested_policy=policy, namespace_policy="field",
                               renames={"k": "key"}, drop_fields=["f"]))
    batch = _mixed_batch()
    ids0, vec0 = copy.deepcopy(batch.ids), batch.vectors.copy()
    meta0, sparse0, rej0 = copy.deepcopy(batch.metadata), list(batch.sparse), list(batch.rejected)
    plan0 = p.to_json()

    first = map_batch(batch, p)
    second = map_batch(batch, p)

    # the input is unchanged, deeply
    assert batch.ids == ids0 and [type(i) for i in batch.ids] == [type(i) for i in ids0]
    assert batch.vectors.tobytes() == vec0.tobytes()
    assert batch.metadata == meta0
    assert batch.sparse == sparse0 and batch.rejected == rej0 and batch.namespace == "ns1"
    assert p.to_json() == plan0

    # the same output twice
    assert first.batch.ids == second.batch.ids
    assert first.batch.vectors.tobytes() == second.batch.vectors.tobytes()
    assert first.batch.metadata == second.batch.metadata
    assert first.source_ids == second.source_ids
    assert first.rejected == second.rejected
    assert first.changes == second.changes
    balanced(batch, first)

    # the output does not alias the input: changing it leaves the input alone
    for m in first.batch.metadata:
        m["added"] = 1
        m.clear()
    first.batch.vectors[:] = 7
    assert batch.metadata == meta0 and batch.vectors.tobytes() == vec0.tobytes()


# -- bad vectors and ids ---------------------------------------------------------------------

def test_bad_records_are_rejected_by_id_and_field():
    p = build_plan()  # uuid/uint target, normalizes cosine
    batch = RecordBatch(
        ids=["ok", "nan", "inf", "zero", "", -1, 2**64, "dup", 7, "dup", 8],
        vectors=vec([1, 2, 3, 4], [np.nan, 0, 0, 1], [np.inf, 0, 0, 1], [0, 0, 0, 0],
                    [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 1, 0],
                    [0, 1, 0, 0], [-0.0, 0.0, -0.0, 0.0]),
        metadata=[{"i": i} for i in range(11)],
    )
    out = map_batch(batch, p)
    balanced(batch, out)
    expect = {
        "nan": ("vector", "NaN or Inf"),
        "inf": ("vector", "NaN or Inf"),
        "zero": ("vector", "all-zero"),
        8: ("vector", "all-zero"),  # -0.0 is zero too
        "": ("id", "empty"),
        -1: ("id", "outside"),
        2**64: ("id", "outside"),
        "dup": ("id", "duplicate"),
    }
    assert len(out.rejected) == len(expect)
    for rid, (field, words) in expect.items():
        r = rejection_for(out, rid)
        assert r.field == field and words in r.reason, r
        assert repr(rid) in str(r) and f"[{field}]" in str(r)

    # written: "ok", 7 and the LAST "dup", exactly as read
    assert out.source_ids == ["ok", 7, "dup"]
    assert out.batch.ids == [u5("ok"), 7, u5("dup")]
    assert out.batch.vectors.tobytes() == batch.vectors[[0, 8, 9]].tobytes()
    assert out.batch.metadata == [{"i": 0, ORIGINAL_ID_KEY: "ok"}, {"i": 8},
                                  {"i": 9, ORIGINAL_ID_KEY: "dup"}]
    assert "last kept" in rejection_for(out, "dup").reason


def test_triple_duplicate_keeps_only_the_last():
    p = build_plan("memory://dst")
    batch = RecordBatch(["d", "d", "d"], vec([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]), [{"v": i} for i in range(3)])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["d"] and out.batch.metadata == [{"v": 2}]
    assert [r.field for r in out.rejected] == ["id", "id"]


def test_ids_that_collide_only_after_mapping_are_duplicates():
    """A record that came back from an earlier migration gets its original id back: if the
    source also holds a record with that id, the two collide on the target."""
    p = build_plan("memory://dst")  # takes strings: the kept original is restored
    lo = "0f8fad5b-d9cb-469f-a165-70867728950e"
    batch = RecordBatch([lo, "doc-1"], vec([1, 0, 0, 0], [0, 1, 0, 0]),
                        [{ORIGINAL_ID_KEY: "doc-1"}, {}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["doc-1"] and out.source_ids == ["doc-1"]
    assert rejection_for(out, lo).field == "id"


def test_zero_vectors_are_kept_where_the_target_can_store_them():
    batch = RecordBatch(["z"], vec([0, 0, 0, 0]), [{}])
    plain = map_batch(batch, build_plan("memory://dst"))  # cosine, not normalizing
    assert plain.batch.ids == ["z"] and not plain.rejected
    reset_src = connect("memory://src2")
    reset_src.create(TargetSpec("src2", DIM, "dot"))
    dot = map_batch(batch, make_plan(reset_src, connect(UUID_TARGET)))  # normalizing, but dot
    assert len(dot.batch) == 1 and not dot.rejected
    p = build_plan("memory://dst")
    p.caps["rejects_zero_vectors"] = True
    out = map_batch(batch, p)
    assert rejection_for(out, "z").field == "vector"


def test_vectors_whose_norm_overflows_float32_are_rejected_only_where_normalized():
    """sqrt(float32 max) is about 1.84e19: a norm past it squares to Inf in float32, and a
    normalizing target stores zeros. 9e18 in each of 4 components is a norm of 1.8e19."""
    batch = RecordBatch(["under", "over", "max"], vec([9e18, 9e18, 9e18, 9e18], [1e19, 1e19, 1e19, 1e19],
                                                       [3.4e38, 0, 0, 0]), [{}, {}, {}])
    out = map_batch(batch, build_plan())  # normalizes cosine
    balanced(batch, out)
    assert out.source_ids == ["under"]
    for rid in ("over", "max"):
        r = rejection_for(out, rid)
        assert r.field == "vector" and "norm overflows float32" in r.reason, r
    plain = map_batch(batch, build_plan("memory://dst"))  # stores vectors as given
    assert plain.source_ids == ["under", "over", "max"] and not plain.rejected


def test_wrong_dimension_rejects_every_row():
    p = build_plan()
    batch = RecordBatch([1, 2, 3], np.ones((3, DIM + 1), np.float32), [{}, {}, {}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert len(out.batch) == 0 and out.batch.vectors.shape == (0, DIM)
    for rid in (1, 2, 3):
        r = rejection_for(out, rid)
        assert r.field == "vector" and "dimension" in r.reason
        assert str(DIM + 1) in r.reason and str(DIM) in r.reason


def test_source_side_rejections_are_carried_and_counted():
    p = build_plan()
    pre = Rejection("short", "vector has dimension 3, the target 4", "vector", "")
    batch = RecordBatch([1], vec([1, 2, 3, 4]), [{}], rejected=[pre])
    out = map_batch(batch, p)
    assert out.read == 2 and out.rejected == [pre] and out.batch.ids == [1]


def test_empty_batch():
    out = map_batch(RecordBatch.empty(DIM), build_plan())
    assert out.read == 0 and len(out.batch) == 0 and out.batch.vectors.shape == (0, DIM)


# -- metadata policies -------------------------------------------------------------------------

def test_metadata_is_unchanged_when_the_target_takes_everything():
    meta = {"n": None, "obj": {"b": 1, "a": {"c": None}}, "big": 2**60, "mixed": [1, "a", None],
            "tags": ["x"], "flag": True, "f": 0.25, "s": "ünï ✓"}
    out = one(meta, build_plan("memory://dst"))
    assert out.batch.metadata == [meta] and out.changes == {}


def test_restrictive_caps_policies_produce_the_documented_values():
    p = restrictive(build_plan("memory://dst"))
    meta = {
        "n": None,
        "obj": {"b": 1, "a": {"d": 2, "c": 3}},
        "big": 2**60, "neg_big": -(2**53 + 1), "edge": 2**53, "small": -5,
        "mixed": [1, "a", None], "nested_list": [["a"]], "tags": ["x", "y"], "empty": [],
        "flag": True, "f": 1.5, "s": "text",
    }
    out = one(meta, p)
    assert not out.rejected
    got = out.batch.metadata[0]
    assert "n" not in got  # null dropped
    assert got["obj"] == '{"a":{"c":3,"d":2},"b":1}'  # JSON string, sorted keys
    assert got["big"] == str(2**60) and got["neg_big"] == str(-(2**53 + 1))
    assert got["edge"] == 2**53 and type(got["edge"]) is int  # still exact as float64
    assert got["small"] == -5
    assert got["mixed"] == '[1,"a",null]' and orjson.loads(got["mixed"]) == [1, "a", None]
    assert got["nested_list"] == '[["a"]]'
    assert got["tags"] == ["x", "y"] and got["empty"] == []
    assert got["flag"] is True and got["f"] == 1.5 and got["s"] == "text"
    assert out.changes == {"null dropped": 1, "nested -> json": 1, "big int -> string": 2,
                           "list -> json": 2}


def test_flatten_policy_uses_dotted_keys():
    p = restrictive(build_plan("memory://dst", nested_policy="flatten"))
    out = one({"src": {"site": "s1", "rank": 3, "deep": {"x": [1, 2]}, "none": None}, "top": 1,
               "empty": {}}, p)
    assert not out.rejected
    assert out.batch.metadata[0] == {"src.site": "s1", "src.rank": 3, "src.deep.x": "[1,2]",
                                     "top": 1, "empty": "{}"}


def test_drop_policy_rejects_nested_records_naming_the_field():
    p = restrictive(build_plan("memory://dst", nested_policy="drop"))
    batch = RecordBatch(["keep", "nest"], vec([1, 0, 0, 0], [0, 1, 0, 0]), [{"a": 1}, {"a": 1, "obj": {"x": 1}}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["keep"]
    r = rejection_for(out, "nest")
    assert r.field == "metadata.obj" and "nested" in r.reason


def test_renames_and_dropped_fields():
    p = build_plan("memory://dst", renames={"old": "new"}, drop_fields=["secret"])
    out = one({"old": 1, "secret": "x", "other": 2}, p)
    assert out.batch.metadata == [{"new": 1, "other": 2}]


def test_field_names_the_target_refuses_are_rejected_by_field():
    p = build_plan("memory://dst", renames={"bad name": "good_name"})
    p.caps["field_name_pattern"] = "[_A-Za-z][_0-9A-Za-z]*"
    p.caps["reserved_fields"] = ["id"]
    batch = RecordBatch(["a", "b", "c"], vec([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]),
                        [{"bad name": 1}, {"other-bad": 1}, {"id": 3}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["a"] and out.batch.metadata == [{"good_name": 1}]
    assert rejection_for(out, "b").field == "metadata.other-bad"
    assert rejection_for(out, "c").field == "metadata.id" and "reserved" in rejection_for(out, "c").reason


# -- size limits -----------------------------------------------------------------------------

def test_max_metadata_bytes():
    p = build_plan("memory://dst")
    p.caps["max_metadata_bytes"] = 40
    fits = {"t": "x" * 30}  # {"t":"xxx..."} = 38 bytes
    assert len(orjson.dumps(fits)) <= 40
    batch = RecordBatch(["small", "large"], vec([1, 0, 0, 0], [0, 1, 0, 0]), [fits, {"t": "x" * 40}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["small"]
    r = rejection_for(out, "large")
    assert r.field == "metadata" and "48" in r.reason and "40" in r.reason  # size and limit


def test_max_metadata_bytes_counts_what_vmkit_adds():
    """The original id kept in metadata counts against the limit too."""
    p = build_plan()  # the string id becomes a uuid5, the original goes into metadata
    p.caps["max_metadata_bytes"] = 20
    out = one({"t": "x"}, p, rid="a-long-source-identifier")
    assert rejection_for(out, "a-long-source-identifier").field == "metadata"


def test_max_id_length():
    p = build_plan("memory://dst?ids=string")
    p.caps["max_id_length"] = 10
    batch = RecordBatch(["a" * 10, "b" * 11, "ü" * 10, 12345678901], vec([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]),
                        [{}, {}, {}, {}])
    out = map_batch(batch, p)
    balanced(batch, out)
    assert out.batch.ids == ["a" * 10, "ü" * 10]
    for rid, n in (("b" * 11, 11), (12345678901, 11)):
        r = rejection_for(out, rid)
        assert r.field == "id" and str(n) in r.reason and "10" in r.reason  # length and limit


def test_uint_ids_into_a_string_target_keep_their_kind():
    out = one({}, build_plan("memory://dst?ids=string"), rid=42)
    assert out.batch.ids == ["42"] and out.batch.metadata == [{ID_KIND_KEY: "uint"}]
    assert out.source_ids == [42]


# -- namespaces ------------------------------------------------------------------------------

def test_namespace_policy_field_keeps_ids_distinct_and_records_the_namespace():
    p = build_plan(namespace_policy="field")
    assert p.namespace_policy == "field" and p.namespace_field == "namespace"
    outs = {}
    for ns in ("a", "b"):
        batch = RecordBatch([1, "doc"], vec([1, 0, 0, 0], [0, 1, 0, 0]), [{"x": 1}, {}], namespace=ns)
        outs[ns] = map_batch(batch, p)
        assert outs[ns].batch.namespace == ""
        assert outs[ns].source_ids == [1, "doc"]
        assert outs[ns].batch.metadata == [{"x": 1, ORIGINAL_ID_KEY: "1", ID_KIND_KEY: "uint", "namespace": ns},
                                           {ORIGINAL_ID_KEY: "doc", "namespace": ns}]
    all_ids = outs["a"].batch.ids + outs["b"].batch.ids
    assert len(set(all_ids)) == 4
    assert all(uuid.UUID(t).version == 5 for t in all_ids)
    # the default namespace is not scoped and gets no field
    plain = map_batch(RecordBatch([1], vec([1, 0, 0, 0]), [{}]), p)
    assert plain.batch.ids == [1] and plain.batch.metadata == [{}]
    assert plain.batch.ids[0] not in all_ids


def test_namespace_policy_field_with_custom_field_name():
    p = build_plan(namespace_policy="field", namespace_field="tenant")
    out = map_batch(RecordBatch([1], vec([1, 0, 0, 0]), [{}], namespace="t1"), p)
    assert out.batch.metadata[0]["tenant"] == "t1" and "namespace" not in out.batch.metadata[0]


def test_namespace_policy_keep():
    p = build_plan("memory://dst")
    assert p.namespace_policy == "keep"  # the memory target has namespaces
    out = map_batch(RecordBatch([1, "doc"], vec([1, 0, 0, 0], [0, 1, 0, 0]), [{}, {}], namespace="a"), p)
    assert out.batch.namespace == "a"
    assert out.batch.ids == [1, "doc"] and out.batch.metadata == [{}, {}]


def test_sparse_vectors_follow_their_rows():
    p = build_plan("memory://dst")
    assert p.target.sparse is False
    p.target = TargetSpec(p.target.name, DIM, "cosine", sparse=True)
    sv = [SparseVector.of([1], [0.5]), None, SparseVector.of([2, 0], [1.0, 2.0])]
    batch = RecordBatch(["a", "bad", "c"], vec([1, 0, 0, 0], [np.nan, 0, 0, 0], [0, 0, 1, 0]), [{}, {}, {}], sparse=sv)
    out = map_batch(batch, p)
    assert out.batch.ids == ["a", "c"] and out.batch.sparse == [sv[0], sv[2]]


# -- known problems --------------------------------------------------------------------------

def test_flatten_collision_is_not_silent():
    p = restrictive(build_plan("memory://dst", nested_policy="flatten"))
    out = one({"a.b": 1, "a": {"b": 2}}, p)
    if out.rejected:
        assert rejection_for(out, "r1").field.startswith("metadata.a")
    else:
        assert sorted(v for k, v in out.batch.metadata[0].items()) == [1, 2]


def test_namespace_field_does_not_overwrite_user_metadata():
    p = build_plan(namespace_policy="field")
    batch = RecordBatch(["x"], vec([1, 0, 0, 0]), [{"namespace": "user value"}], namespace="a")
    out = map_batch(batch, p)
    if out.rejected:
        assert rejection_for(out, "x").field == "metadata.namespace"
    else:
        assert "user value" in out.batch.metadata[0].values()


@pytest.mark.parametrize("meta", [{"l": [2**60 + 1, 1]}, {"o": {"v": 2**60 + 1}}], ids=["list", "nested"])
def test_big_ints_inside_containers_survive(meta):
    p = build_plan("memory://dst")
    p.caps["metadata_big_ints"] = False  # nested objects and mixed lists still allowed
    out = one(meta, p)
    assert not out.rejected
    got = out.batch.metadata[0]
    assert str(2**60 + 1) in orjson.dumps(got).decode()  # the value is still there...
    assert _ints_past_2_53(got) == []  # ...but never as an int a float64 store would round


def _ints_past_2_53(obj) -> list[int]:
    if isinstance(obj, dict):
        return [i for v in obj.values() for i in _ints_past_2_53(v)]
    if isinstance(obj, list):
        return [i for v in obj for i in _ints_past_2_53(v)]
    return [obj] if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 2**53 else []


# -- values JSON cannot carry as given -------------------------------------------------------

WHEN = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("objects", [True, False], ids=["keeps-objects", "json"])
@pytest.mark.parametrize("meta,field", [
    ({"x": float("nan")}, "metadata.x"), ({"x": float("-inf")}, "metadata.x"),
    ({"o": {"l": [1.5, float("inf")]}}, "metadata.o.l[1]")], ids=["nan", "-inf", "nested"])
def test_nonfinite_metadata_numbers_are_rejected_naming_the_field(meta, field, objects):
    """Canonical hashing writes NaN/Inf as null, so no target could be verified to hold them."""
    p = build_plan("memory://dst")
    p.caps["metadata_objects"] = objects
    batch = RecordBatch(["bad", "ok"], vec([1, 2, 3, 4], [4, 3, 2, 1]), [meta, {"x": 1.5, "n": None}])
    out = map_batch(batch, p)
    balanced(batch, out)
    r = rejection_for(out, "bad")
    assert r.field == field and "non-finite metadata number" in r.reason, r
    assert out.batch.metadata == [{"x": 1.5, "n": None}]


def test_dates_become_iso_text_on_json_targets_at_any_depth():
    p = build_plan("memory://dst")
    p.caps["metadata_objects"] = False
    meta = {"at": WHEN, "day": WHEN.date(), "t": WHEN.time(), "deep": {"l": [WHEN, 1]}, "s": "x"}
    before = copy.deepcopy(meta)
    out = one(meta, p)
    assert not out.rejected and meta == before  # the input is left alone
    assert out.batch.metadata == [{"at": "2024-02-29T23:59:58.123456+00:00", "day": "2024-02-29",
                                   "t": "23:59:58.123456", "deep": {"l": ["2024-02-29T23:59:58.123456+00:00", 1]},
                                   "s": "x"}]
    assert out.changes == {"date -> ISO-8601 text": 4}
    p.caps["metadata_objects"] = True
    kept = one(meta, p)
    assert kept.batch.metadata == [meta] and not kept.changes
    assert kept.batch.metadata[0]["deep"]["l"][0] is WHEN


def test_the_plan_announces_dates_with_the_policy_the_target_implies():
    src = connect("memory://dated")
    src.create(TargetSpec("dated", DIM, "cosine"))
    src.upsert(RecordBatch(["a", "b"], vec([1, 2, 3, 4], [4, 3, 2, 1]), [{"at": WHEN}, {"o": {"l": [WHEN]}}]))
    p = make_plan(src, connect("qdrant:///:memory:?collection=dated"))
    dated = {w.field: w for w in p.warnings if "dates" in w.message}
    assert set(dated) == {"metadata.at", "metadata.o"}
    assert dated["metadata.at"].policy == "stored as ISO-8601 text" and dated["metadata.at"].examples == ["a"]
    kept = make_plan(src, connect("memory://dst"))
    assert [w.policy for w in kept.warnings if w.field == "metadata.at"] == [
        "kept as objects; verification hashes their ISO-8601 text"]


# -- the pass-through fast path gives what the per-record path gives ------------------------------

FAST_CASES = {
    "ints": ([3, 1, 2**64 - 1, 0], "memory://dst?ids=uuid,uint"),
    "strings": (["a", "b c", "0f8fad5b-d9cb-469f-a165-70867728950e", "7"], "memory://dst?ids=string"),
    "ints on a string target": ([1, 2, 3, 4], "memory://dst?ids=string"),
    "strings on a uuid target": (["a", "b", "c", "d"], "memory://dst?ids=uuid,uint"),
    "duplicates": (["a", "b", "a", "c"], "memory://dst"),
    "empty id": (["a", "", "b", "c"], "memory://dst"),
    "mixed kinds": ([1, "1", 2, "x"], "memory://dst"),
    "kept original": (["a", "b", "c", "d"], "memory://dst"),
}


@pytest.mark.parametrize("case", list(FAST_CASES))
@pytest.mark.parametrize("namespace", ["", "ns"])
def test_fast_path_matches_the_per_record_path(case, namespace, monkeypatch):
    import vmkit.planning.transform as transform

    ids, target = FAST_CASES[case]
    metas = [{"i": i, "tags": ["x"]} for i in range(4)]
    if case == "kept original":
        metas[2] = {ORIGINAL_ID_KEY: "7", ID_KIND_KEY: "uint"}
    vectors = vec([1, 0, 0, 0], [0, 0, 0, 0], [np.inf, 1, 1, 1], [1, 2, 3, 4])  # two bad rows
    batch = RecordBatch(ids, vectors, metas, namespace=namespace)
    p = build_plan(target)
    assert transform._ids_pass_through(batch, p, p.capabilities) == (case in ("ints", "strings"))
    fast = map_batch(batch, p)
    monkeypatch.setattr(transform, "_ids_pass_through", lambda *a: False)
    slow = map_batch(batch, p)
    assert fast.batch.ids == slow.batch.ids and fast.source_ids == slow.source_ids
    assert [type(i) for i in fast.batch.ids] == [type(i) for i in slow.batch.ids]
    assert fast.batch.metadata == slow.batch.metadata and fast.batch.namespace == slow.batch.namespace
    assert np.array_equal(fast.batch.vectors, slow.batch.vectors)
    assert sorted(map(str, fast.rejected)) == sorted(map(str, slow.rejected))
    balanced(batch, fast)
    fast.batch.metadata and fast.batch.metadata[0].update(x=1)
    assert "x" not in batch.metadata[0] and "x" not in metas[0]  # the input is never shared


def test_a_reserved_ending_the_plan_did_not_see_is_rejected_by_the_plan_rules():
    """A key with an ending the target reserves (Weaviate's _temp...) that the plan's sample
    never met has no planned rename: the record is rejected naming the key, before the target
    is asked (which would refuse the whole request), and the other records go through."""
    src = connect("memory://src")
    src.create(TargetSpec("src", 2, "cosine"))
    p = make_plan(src, connect("memory://dst"))
    p.caps["reserved_suffixes"] = ["_temp"]  # a Plan is plain data: Weaviate's rule on a memory target
    batch = RecordBatch(["a", "b"], np.ones((2, 2), np.float32), [{"price": 1}, {"price_TEMP": 2}])
    out = map_batch(batch, p)
    assert out.batch.ids == ["a"] and out.read == 2
    assert [(r.record_id, r.field) for r in out.rejected] == [("b", "metadata.price_TEMP")]
    assert "ends in an ending the target reserves ('price_TEMP'" in out.rejected[0].reason


def test_negative_sparse_weights_are_rejected_only_where_the_target_refuses_them():
    sp = [SparseVector.of([1, 9], [0.5, -0.25]), SparseVector.of([2], [1.0]), None]
    batch = RecordBatch(["neg", "pos", "none"], vec([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]), [{}, {}, {}], sp)
    p = build_plan("memory://dst")
    p.target = dataclasses.replace(p.target, sparse=True)
    assert not map_batch(batch, p).rejected  # memory takes any weight
    p.caps["sparse_nonnegative"] = True  # Milvus: "sparse weight ... must be finite, non-negative"
    out = map_batch(batch, p)
    assert out.batch.ids == ["pos", "none"]
    assert rejection_for(out, "neg").field == "sparse" and "negative weights" in rejection_for(out, "neg").reason
    balanced(batch, out)
