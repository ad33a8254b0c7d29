"""Issue 5: a 20,000-record Qdrant source with messy metadata, planned against targets with
different rules. The plan names every change with its policy before anything is written, and
the dry run predicts exactly the rejections the real run then dead-letters."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect, plan
from vmkit.core.ids import ORIGINAL_ID_KEY
from vmkit.core.records import RecordBatch
from vmkit.planning.dryrun import dry_run

pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")

N, DIM = 20_000, 8
SOURCE = "qdrant:///:memory:?collection=messy"


def messy_record(i: int) -> tuple[object, dict]:
    rid: object = i if i % 3 == 0 else str(uuid.uuid5(uuid.NAMESPACE_OID, f"messy-{i}"))
    meta: dict = {
        "title": f"doc {i}",
        "maybe": None if i % 5 == 0 else i,
        "nested": {"a": {"b": i, "c": [1, 2]}},
        "mixed": [1, "two", 3.0],
        "dotted.key": i % 11,
        "ключ": "значение",
        "Name": "upper", "name": "lower",
    }
    if i % 7 == 0:
        meta["big"] = 2**60 + i
    if i % 1000 == 1:
        meta["blob"] = "x" * 50_000
    if i % 2000 == 2:  # came from an earlier migration of a system with long string ids
        meta[ORIGINAL_ID_KEY] = "s" * 600 + str(i)
    return rid, meta


@pytest.fixture(scope="module")
def source() -> str:
    conn = connect(SOURCE)
    if conn.describe() is None:
        conn.create(TargetSpec("messy", DIM, "cosine"))
        rng = np.random.default_rng(5)
        for start in range(0, N, 2000):
            rows = [messy_record(i) for i in range(start, start + 2000)]
            conn.upsert(RecordBatch([r[0] for r in rows], rng.standard_normal((2000, DIM)),
                                    [r[1] for r in rows]))
    return SOURCE


def findings(p) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in p.warnings:
        out.setdefault(w.field, []).append(f"{w.message} -> {w.policy}")
    return out


def run_and_compare(p, mid: str, tmp_path) -> None:
    predicted = dry_run(p, sample=None)
    assert predicted.balanced and predicted.checked == N
    m = Migration.create(p.source_uri, p.target_uri, migration_id=mid, state=tmp_path / "s.db",
                         plan=p, retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed" and status.verification == "passed", str(status)
    assert status.records_read == N and status.balanced
    actual = {(ns, rid, reason.split(" (")[0]) for ns, rid, reason in m.store.query(
        "SELECT namespace, record_id, reason FROM rejections WHERE migration_id=?", mid)}
    expected = {(r.namespace, str(r.record_id), r.reason.split(" (")[0]) for r in predicted.rejections}
    assert actual == expected
    m.close()


def test_qdrant_target_takes_everything(source, tmp_path):
    with connect(source) as src, connect(f"qdrant://{tmp_path}/q?collection=c") as dst:
        p = plan(src, dst)
    assert not p.errors and not p.renames
    f = findings(p)
    assert set(f) == {"vector"}  # only: unit vectors under cosine
    run_and_compare(p, "to-qdrant", tmp_path)


def test_pinecone_target_reshapes_metadata_and_rejects_what_it_cannot_hold(source, tmp_path, pinecone_emu):
    with connect(source) as src, connect("pinecone://messy-target") as dst:
        p = plan(src, dst, sample=N)  # rare records (0.1%) need the whole source to be seen
    f = findings(p)
    assert any("null values" in x and "key dropped" in x for x in f["metadata.maybe"])
    assert any("nested objects" in x and "JSON string" in x for x in f["metadata.nested"])
    assert any("lists of" in x and "JSON string" in x for x in f["metadata.mixed"])
    assert any("2^53" in x and "decimal string" in x for x in f["metadata.big"])
    # string ids kept by an earlier migration are restored: ints as decimals could meet them
    assert any("uint ids" in x and "could collide" in x and "uuid5" in x for x in f["id"])
    # The dry run inside the plan: oversized metadata and over-long restored ids.
    assert any("metadata over the target's 40960-byte limit" in x for x in f.get("metadata", []))
    assert not p.errors
    run_and_compare(p, "to-pinecone", tmp_path)
    rejected = dry_run(p, sample=None).by_reason()
    assert rejected == {"metadata over the target's 40960-byte limit": 20,
                        "id over the target's 512-character limit": 10}


def test_uuid_only_target_with_naming_rules_renames_fields(source, tmp_path):
    """A target with Weaviate's rules (UUID ids, property-name pattern, reserved names)."""
    target = "memory://weaviate-like?ids=uuid"
    with connect(source) as src, connect(target) as dst:
        dst.capabilities = dst.capabilities.__class__(**{
            **dst.capabilities.__dict__, "field_name_pattern": r"[_A-Za-z][_0-9A-Za-z]*",
            "reserved_fields": frozenset({"id", "_id", "_additional", "meta"})})
        p = plan(src, dst)
    assert p.renames["dotted.key"] == "dotted_key"
    assert p.renames["name"] == "name_2" and "Name" not in p.renames  # case-insensitive clash
    assert "ключ" in p.renames
    assert any("uint ids" in x and "uuid5" in x for x in findings(p)["id"])
    predicted = dry_run(p, sample=None)
    assert predicted.rejections == [] and predicted.would_write == N


def test_weaviate_target_renames_and_reshapes(source, tmp_path):
    from emulators.weaviate_emulator import WeaviateEmulator

    with WeaviateEmulator() as pinecone_emu:
        target = f"weaviate://127.0.0.1:{pinecone_emu.http_port}/Messy?grpc_port={pinecone_emu.grpc_port}"
        with connect(source) as src, connect(target) as dst:
            p = plan(src, dst)
        f = findings(p)
        assert p.renames["dotted.key"] == "dotted_key" and "ключ" in p.renames
        assert "Name" in p.renames or "name" in p.renames  # one property after case folding
        assert any("uint ids" in x and "uuid5" in x for x in f["id"])
        assert any("one type" in x and "JSON string" in x for x in f["metadata.mixed"])
        assert any("null values" in x for x in f["metadata.maybe"])
        run_and_compare(p, "to-weaviate", tmp_path)


def test_sochdb_target_takes_string_ids_and_keeps_metadata(source, tmp_path):
    pytest.importorskip("sochdb")
    with connect(source) as src, connect(f"sochdb://{tmp_path}/soch?collection=messy") as dst:
        p = plan(src, dst, sample=N)  # the 10 string ids kept by an earlier migration must be seen
    f = findings(p)
    # string ids kept by an earlier migration are restored: ints as decimals could meet them
    assert any("uint ids" in x and "could collide" in x and "uuid5" in x for x in f["id"])
    assert not p.errors and not p.renames
    assert not any(k.startswith("metadata.") for k in f)  # every metadata value stored as it is
    run_and_compare(p, "to-sochdb", tmp_path)
