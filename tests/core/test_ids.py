"""Id kinds and the deterministic, reversible id mapping (vmkit.core.ids; DESIGN.md "Ids and schema")."""

from __future__ import annotations

import uuid

import pytest

from vmkit.core.ids import (
    ID_KIND_KEY,
    ORIGINAL_ID_KEY,
    UINT_MAX,
    VMKIT_NAMESPACE,
    BadId,
    id_kind,
    ints_collide_with_strings,
    restore_source_id,
    to_target_id,
)

U = "0f8fad5b-d9cb-469f-a165-70867728950e"
ALL = frozenset({"uuid", "uint", "string"})


def u5(rid: str | int) -> str:
    """The documented mapping: uuid5 of the id qualified by its kind ("i:7", "s:doc-1")."""
    return str(uuid.uuid5(VMKIT_NAMESPACE, f"i:{rid}" if isinstance(rid, int) else f"s:{rid}"))


# -- id_kind -------------------------------------------------------------------------------

@pytest.mark.parametrize("rid", [0, 1, 2**53 + 1, 2**63, UINT_MAX])
def test_unsigned_ints_in_range_are_uint(rid):
    assert id_kind(rid) == "uint"


@pytest.mark.parametrize("rid", [-1, -(2**63), 2**64, 2**80])
def test_ints_out_of_range_are_bad(rid):
    with pytest.raises(BadId, match="outside 0..2\\*\\*64-1"):
        id_kind(rid)


@pytest.mark.parametrize("rid", [True, False, 1.0, 0.0, float("nan"), None, b"abc", ["a"], {"a": 1}])
def test_non_int_non_str_ids_are_bad(rid):
    with pytest.raises(BadId, match=type(rid).__name__):
        id_kind(rid)


def test_empty_string_is_bad():
    with pytest.raises(BadId, match="empty"):
        id_kind("")


def test_only_canonical_uuids_are_uuid():
    """A UUID in another case is a different id string: treating it as the same UUID would
    merge two source records that differ only in case."""
    assert id_kind(U) == "uuid"
    assert id_kind(U.upper()) == id_kind("0F8FAD5B-d9cb-469F-A165-70867728950E") == "string"


@pytest.mark.parametrize("rid", [
    "doc-1", "7", " ", "ünïcödé ✓", "x" * 513,
    U.replace("-", ""),  # 32 hex digits, no hyphens: not canonical
    "{" + U[1:-1] + "}",  # 36 chars with braces
    U[:-1] + "g",  # not hex
    "0f8fad5b-d9cb-469f-a165-70867728950e0"[:35] + "-",  # 36 chars, 5 hyphens
])
def test_other_strings_are_string(rid):
    assert id_kind(rid) == "string"


# -- to_target_id for every (kind, accepted set) -------------------------------------------

SETS = {
    "all": ALL,
    "uuid+uint": frozenset({"uuid", "uint"}),
    "uuid": frozenset({"uuid"}),
    "string": frozenset({"string"}),
    "uint": frozenset({"uint"}),
    "uint+string": frozenset({"uint", "string"}),
    "uuid+string": frozenset({"uuid", "string"}),
}

BAD = object()
EXPECTED = {
    # uint 7
    (7, "all"): (7, {}),
    (7, "uuid+uint"): (7, {}),
    (7, "uuid"): (u5(7), {ORIGINAL_ID_KEY: "7", ID_KIND_KEY: "uint"}),
    (7, "string"): ("7", {ID_KIND_KEY: "uint"}),
    (7, "uint"): (7, {}),
    (7, "uint+string"): (7, {}),
    (7, "uuid+string"): ("7", {ID_KIND_KEY: "uint"}),
    # uuid
    (U, "all"): (U, {}),
    (U, "uuid+uint"): (U, {}),
    (U, "uuid"): (U, {}),
    (U, "string"): (U, {}),
    (U, "uint"): BAD,
    (U, "uint+string"): (U, {}),
    (U, "uuid+string"): (U, {}),
    # string
    ("doc-1", "all"): ("doc-1", {}),
    ("doc-1", "uuid+uint"): (u5("doc-1"), {ORIGINAL_ID_KEY: "doc-1"}),
    ("doc-1", "uuid"): (u5("doc-1"), {ORIGINAL_ID_KEY: "doc-1"}),
    ("doc-1", "string"): ("doc-1", {}),
    ("doc-1", "uint"): BAD,
    ("doc-1", "uint+string"): ("doc-1", {}),
    ("doc-1", "uuid+string"): ("doc-1", {}),
}


@pytest.mark.parametrize("rid,accepted", list(EXPECTED), ids=[f"{r}-{s}" for r, s in EXPECTED])
def test_to_target_id_table(rid, accepted):
    want = EXPECTED[(rid, accepted)]
    if want is BAD:
        with pytest.raises(BadId, match="not accepted by the target"):
            to_target_id(rid, SETS[accepted])
        return
    tid, meta = to_target_id(rid, SETS[accepted])
    assert (tid, meta) == want
    assert type(tid) is type(want[0])
    # whatever comes out is something the target accepts (a UUID is also a string)
    kind = id_kind(tid)
    assert kind in SETS[accepted] or (kind == "uuid" and "string" in SETS[accepted])


def test_upper_case_uuid_is_kept_or_mapped_reversibly():
    assert to_target_id(U.upper(), SETS["all"]) == (U.upper(), {})  # strings are taken as they are
    tid, meta = to_target_id(U.upper(), SETS["uuid"])  # a UUID-only target: uuid5, original kept
    assert tid == u5(U.upper()) != U and meta == {ORIGINAL_ID_KEY: U.upper()}


@pytest.mark.parametrize("rid", [-1, 2**64, "", None, True, 1.5])
def test_to_target_id_refuses_bad_ids(rid):
    with pytest.raises(BadId):
        to_target_id(rid, ALL)


def test_uuid5_mapping_is_deterministic_and_distinct():
    a1, _ = to_target_id("doc-1", SETS["uuid"])
    a2, _ = to_target_id("doc-1", SETS["uuid"])
    b, _ = to_target_id("doc-2", SETS["uuid"])
    assert a1 == a2 == u5("doc-1")
    assert a1 != b
    assert uuid.UUID(a1).version == 5


def test_uuid5_does_not_depend_on_process_state():
    """The fixed namespace is a constant: a re-run in another process maps to the same id."""
    assert VMKIT_NAMESPACE == uuid.UUID("6f1d2c3a-8a3e-5b7c-9d42-7a6b5c4d3e2f")
    assert to_target_id("doc-1", SETS["uuid"])[0] == str(uuid.uuid5(
        uuid.UUID("6f1d2c3a-8a3e-5b7c-9d42-7a6b5c4d3e2f"), "s:doc-1"))


# -- scope (a source namespace folded into a target without namespaces) --------------------

@pytest.mark.parametrize("rid", [7, "doc-1", U])
def test_scope_gives_distinct_target_ids_per_namespace(rid):
    a, meta_a = to_target_id(rid, SETS["uuid+uint"], scope="a")
    b, meta_b = to_target_id(rid, SETS["uuid+uint"], scope="b")
    plain, _ = to_target_id(rid, SETS["uuid+uint"])
    assert len({a, b, plain}) == 3
    kept = {ORIGINAL_ID_KEY: str(rid), ID_KIND_KEY: "uint"} if isinstance(rid, int) else {ORIGINAL_ID_KEY: rid}
    assert meta_a == meta_b == kept
    assert id_kind(a) == id_kind(b) == "uuid"
    # deterministic
    assert to_target_id(rid, SETS["uuid+uint"], scope="a") == (a, meta_a)


def test_scope_on_string_target_keeps_namespace_in_the_id():
    a, meta = to_target_id("doc-1", SETS["string"], scope="a")
    b, _ = to_target_id("doc-1", SETS["string"], scope="b")
    assert a != b and "a" in a and "doc-1" in a
    assert meta == {ORIGINAL_ID_KEY: "doc-1"}


def test_scope_still_refuses_bad_ids():
    with pytest.raises(BadId):
        to_target_id(-1, ALL, scope="a")
    with pytest.raises(BadId):
        to_target_id("", ALL, scope="a")


# -- restore_source_id ---------------------------------------------------------------------

def test_string_round_trips_through_uuid5():
    tid, meta = to_target_id("doc-1", SETS["uuid+uint"])
    stored = {"title": "t", **meta}
    rid, rest = restore_source_id(tid, stored)
    assert rid == "doc-1"
    assert rest == {"title": "t"}
    assert ORIGINAL_ID_KEY in stored  # the input is not mutated


def test_uint_round_trips_through_string():
    tid, meta = to_target_id(2**63 + 5, SETS["string"])
    assert tid == str(2**63 + 5)
    stored = {"k": 1, **meta}
    rid, rest = restore_source_id(tid, stored)
    assert rid == 2**63 + 5 and type(rid) is int
    assert rest == {"k": 1}
    assert ID_KIND_KEY in stored


def test_uint_round_trips_through_uuid5():
    tid, meta = to_target_id(7, SETS["uuid"])
    rid, rest = restore_source_id(tid, dict(meta))
    assert rid == 7 and rest == {}


def test_scoped_id_restores_the_original():
    tid, meta = to_target_id(7, SETS["uuid+uint"], scope="ns")
    rid, rest = restore_source_id(tid, {"namespace": "ns", **meta})
    assert rid == 7 and rest == {"namespace": "ns"}


def test_a_target_that_cannot_take_the_original_gets_the_same_id_again():
    """Restored, then mapped for a uuid target once more: the same uuid5 and kept original,
    so a target id depends on the original alone, not on the path the record took."""
    tid, meta = to_target_id("doc-1", SETS["uuid"])
    rid, rest = restore_source_id(tid, meta)
    assert (rid, rest) == ("doc-1", {})
    assert to_target_id(rid, SETS["uuid+uint"]) == (tid, meta)


def test_an_int_kept_as_decimal_text_is_the_int_on_every_later_trip():
    """Int 1 in Pinecone is "1" marked uint; into a uuid-only target it is uuid5 of the int,
    never of the string "1" (which a real string id "1" maps to)."""
    text, meta = to_target_id(1, SETS["string"])
    rid, rest = restore_source_id(text, meta)
    assert (rid, rest) == (1, {})
    assert to_target_id(rid, SETS["uuid"])[0] == u5(1) != to_target_id("1", SETS["uuid"])[0]


def test_restore_without_markers_is_identity():
    assert restore_source_id("x", {"a": 1}) == ("x", {"a": 1})
    assert restore_source_id(5, {}) == (5, {})


def test_restore_ignores_an_unusable_original():
    meta = {ORIGINAL_ID_KEY: -3, "a": 1}
    assert restore_source_id("x", meta) == ("x", meta)


def test_restore_uint_marker_on_non_digit_id_is_left_alone():
    meta = {ID_KIND_KEY: "uint"}
    assert restore_source_id("12a", meta) == ("12a", meta)


# -- known problems --------------------------------------------------------------------------

def test_upper_case_uuid_into_string_target_is_reversible():
    src = U.upper()
    tid, meta = to_target_id(src, SETS["string"])
    rid, _ = restore_source_id(tid, meta)
    assert rid == src


def test_int_and_string_with_same_digits_map_to_distinct_targets():
    assert to_target_id(7, SETS["uuid"])[0] != to_target_id("7", SETS["uuid"])[0]


# -- int and string twins on a target that takes strings but not ints -------------------------

def test_twins_stay_apart_when_ints_travel_as_uuid5():
    """The plan picks uint_ids="uuid5" when the source holds both kinds: the string "7" keeps
    its own id (Pinecone-to-Pinecone copies must not rewrite strings), the int does not take it."""
    as_int, meta = to_target_id(7, SETS["string"], uint_ids="uuid5")
    as_str, none = to_target_id("7", SETS["string"], uint_ids="uuid5")
    assert (as_int, meta) == (u5(7), {ORIGINAL_ID_KEY: "7", ID_KIND_KEY: "uint"})
    assert (as_str, none) == ("7", {})
    # the way back restores each kind, and mapping it again gives the same ids
    assert restore_source_id(as_int, meta) == (7, {})
    assert restore_source_id(as_str, {}) == ("7", {})
    assert to_target_id(7, SETS["string"], uint_ids="uuid5") == (as_int, meta)


@pytest.mark.parametrize("accepted", ["all", "uuid+uint", "uint", "uint+string", "uuid"])
def test_uint_ids_policy_only_matters_where_ints_would_be_decimal_text(accepted):
    assert to_target_id(7, SETS[accepted], uint_ids="uuid5") == to_target_id(7, SETS[accepted])


@pytest.mark.parametrize("kinds,accepted,collide", [
    (("uint", "string"), "string", True), (("uint", "string", "uuid"), "uuid+string", True),
    (("uint", "uuid"), "string", False),  # Qdrant's kinds: a uuid is never a decimal
    (("string",), "string", False), (("uint",), "string", False),
    (("uint", "string"), "all", False), (("uint", "string"), "uuid", False)])
def test_ints_collide_with_strings(kinds, accepted, collide):
    assert ints_collide_with_strings(kinds, SETS[accepted]) is collide
