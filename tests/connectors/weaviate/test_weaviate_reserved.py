"""Property names with an ending Weaviate reserves since 2026-05 (``_searchable``, ``_rangeable``,
``_temp``, ``__meta_count``, ``_propertyLength``, ``_nullState``: 422 for a new property) are
renamed by the plan: deterministic, stored in the plan, reversible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")

from emulators.weaviate_emulator import WeaviateEmulator

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.base import Capabilities
from vmkit.connectors.weaviate import naming as naming
from vmkit.core import naming as plan_naming
from vmkit.core.ids import to_target_id
from vmkit.core.records import RecordBatch
from vmkit.planning.plan import Plan

DIM = 8
KEYS = ("price_temp", "body_searchable", "year_rangeable", "tags__meta_count", "len_propertyLength",
        "x_nullState")


def test_reserved_endings_are_renamed_deterministically() -> None:
    caps = Capabilities(field_name_pattern=naming.STABLE_FIELD_PATTERN, reserved_fields=naming.RESERVED_PROPERTIES,
                        reserved_suffixes=naming.RESERVED_SUFFIXES)
    names = [*KEYS, "price", "price_temp_", "temperature", "X_TEMP"]
    renames = plan_naming.plan_renames(names, caps.field_name_pattern, caps.reserved_fields, caps.reserved_suffixes)
    assert renames == plan_naming.plan_renames(list(reversed(names)), caps.field_name_pattern,
                                               caps.reserved_fields, caps.reserved_suffixes)
    assert renames["price_temp"] == "price_temp__2"  # 'price_temp_' is a source key already: kept
    assert renames["x_nullState"] == "x_nullState_" and "temperature" not in renames and "price" not in renames
    assert set(KEYS) <= set(renames) and len(set(renames.values())) == len(renames)
    assert all(naming.property_problem(v) is None for v in renames.values() if v[0].islower())
    assert plan_naming.reverse(renames)["price_temp__2"] == "price_temp"
    assert "reserved" in str(naming.property_problem("price_temp"))
    assert naming.sanitize_property("price_temp") == "price_temp_"
    assert naming.plan_property_renames(["price_temp", "title"]) == {"price_temp": "price_temp_"}
    # the rule travels in the stored plan as data, and plans without it keep their hash
    assert Capabilities(**{**caps.to_dict(), "id_kinds": caps.id_kinds, "metrics": caps.metrics,
                           "reserved_fields": caps.reserved_fields,
                           "reserved_suffixes": tuple(caps.to_dict()["reserved_suffixes"])}) == caps
    assert caps.to_dict()["reserved_suffixes"] == list(naming.RESERVED_SUFFIXES)
    plain = Plan("memory://a", "memory://b", TargetSpec("c", 2, "cosine"), Capabilities().to_dict())
    old = Plan.from_json(plain.to_json().replace('"reserved_suffixes":[],', ""))
    assert old.hash == plain.hash and old.capabilities.reserved_suffixes == ()


def test_the_emulator_refuses_new_properties_with_reserved_endings(weaviate_emu: WeaviateEmulator) -> None:
    from weaviate.classes.config import DataType, Property
    from weaviate.exceptions import UnexpectedStatusCodeError

    client = weaviate_emu.client()
    try:
        docs = client.collections.create("Docs")
        with pytest.raises(UnexpectedStatusCodeError, match="suffix _temp is reserved") as exc:
            docs.config.add_property(Property(name="price_temp", data_type=DataType.NUMBER))
        assert exc.value.status_code == 422
    finally:
        client.close()


def test_qdrant_to_weaviate_with_reserved_endings(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    n = 60
    rng = np.random.default_rng(4)
    metas = [{"price_temp": i / 4, "title": f"doc {i}", "body_searchable": f"b{i}", "year_rangeable": 2000 + i,
              "tags__meta_count": i % 3, "len_propertyLength": i, "x_nullState": i % 2 == 0} for i in range(n)]
    source = f"qdrant://{tmp_path}/q?collection=c"
    with connect(source) as q:
        q.create(TargetSpec("c", DIM, "cosine"))
        q.upsert(RecordBatch(list(range(1, n + 1)), rng.standard_normal((n, DIM)).astype(np.float32), metas))
    m = Migration.create(source, weaviate_emu.uri("Docs"), state=str(tmp_path / "state.db"), migration_id="suffixes",
                         batch_size=25, sample_rate=1.0, retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    status = m.status()
    assert status.verification == "passed" and status.records_rejected == 0 and status.records_written == n
    assert {k: m.plan.renames[k] for k in KEYS} == {k: k + "_" for k in KEYS}
    stored = {p["name"] for p in weaviate_emu.store.collections["Docs"].schema["properties"]}
    assert {k + "_" for k in KEYS} <= stored and not set(KEYS) & stored
    with connect(weaviate_emu.uri("Docs")) as w:  # the way back: the plan's map reversed gives the keys
        got = w.fetch([to_target_id(8, frozenset({"uuid"}))[0]]).metadata[0]
        back = {plan_naming.reverse(m.plan.renames).get(k, k): v for k, v in got.items()}
        assert {k: back[k] for k in metas[7]} == metas[7]
