"""Inactive tenants of a Weaviate source are a decision of the plan (``tenants=`` on the source
URI): by default a plan error listing them; ``active`` reads the active ones only; ``activate``
activates each for reading and puts it back. With ``autoTenantActivation`` a read of a cold tenant
would load it and leave it loaded: vmkit never reads one unless the plan says so."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")

from emulators.weaviate_emulator import WeaviateEmulator

from vmkit import Migration, TargetSpec, connect
from vmkit.core.errors import ConfigError, PlanError
from vmkit.core.records import RecordBatch

DIM = 8
SIZES = {"hot1": 20, "cold1": 15, "off1": 10}
STATES = {"hot1": "HOT", "cold1": "COLD", "off1": "FROZEN"}


def source(weaviate_emu: WeaviateEmulator) -> None:
    """Src: multi-tenant with autoTenantActivation; hot1 active, cold1 INACTIVE, off1 OFFLOADED."""
    with connect(weaviate_emu.uri("Src", multi_tenancy="true")) as w:
        w.create(TargetSpec("Src", DIM, "cosine"))
        for k, (tenant, n) in enumerate(SIZES.items()):
            rng = np.random.default_rng(k)
            w.upsert(RecordBatch([str(uuid.UUID(int=k * 1000 + i + 1)) for i in range(n)],
                                 rng.standard_normal((n, DIM)).astype(np.float32),
                                 [{"title": f"{tenant} {i}"} for i in range(n)], namespace=tenant))
    coll = weaviate_emu.store.collections["Src"]
    coll.schema["multiTenancyConfig"]["autoTenantActivation"] = True
    coll.tenants.update(STATES)


def states(weaviate_emu: WeaviateEmulator) -> dict[str, str]:
    coll = weaviate_emu.store.collections["Src"]
    for _ in range(weaviate_emu.store.transition_reads + 1):  # let FREEZING / UNFREEZING settle
        for t in coll.tenants:
            coll.tenant_status(t)
    return dict(coll.tenants)


def migrate(weaviate_emu: WeaviateEmulator, tmp_path: Path, mid: str, **params: str) -> Migration:
    m = Migration.create(weaviate_emu.uri("Src", **params), weaviate_emu.uri("Dst", multi_tenancy="true"),
                         state=str(tmp_path / "state.db"), migration_id=mid, batch_size=8, sample_rate=1.0,
                         retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    assert m.status().verification == "passed" and m.status().records_rejected == 0
    return m


def test_by_default_the_plan_lists_inactive_tenants_and_wakes_none(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    source(weaviate_emu)
    with pytest.raises(PlanError, match=r"2 inactive tenants: cold1 \(INACTIVE\), off1 \(OFFLOADED\)"):
        Migration.create(weaviate_emu.uri("Src"), weaviate_emu.uri("Dst", multi_tenancy="true"), state=str(tmp_path / "s.db"),
                         migration_id="default")
    assert states(weaviate_emu) == STATES and weaviate_emu.store.collections["Src"].woken == []
    with pytest.raises(ConfigError, match="tenants="):
        connect(weaviate_emu.uri("Src", tenants="sometimes"))


def test_tenants_active_reads_the_active_ones_only(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    source(weaviate_emu)
    m = migrate(weaviate_emu, tmp_path, "active", tenants="active")
    found = [w for w in m.plan.warnings if w.field == "namespace" and "inactive" in w.message]
    assert found and found[0].severity == "warning" and "cold1" in found[0].message
    assert states(weaviate_emu) == STATES and weaviate_emu.store.collections["Src"].woken == []
    with connect(weaviate_emu.uri("Dst", multi_tenancy="true")) as w:
        info = w.describe()
        assert info is not None and info.namespaces == {"hot1": 20}


def test_tenants_activate_reads_all_and_puts_each_back(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    source(weaviate_emu)
    start = len(weaviate_emu.store.collections["Src"].changes)  # tenant creations so far
    m = migrate(weaviate_emu, tmp_path, "activate", tenants="activate")
    assert any(w.field == "namespace" and "activated for reading" in w.policy for w in m.plan.warnings)
    with connect(weaviate_emu.uri("Dst", multi_tenancy="true")) as w:
        info = w.describe()
        assert info is not None and info.namespaces == SIZES
    coll = weaviate_emu.store.collections["Src"]
    assert states(weaviate_emu) == STATES and coll.woken == []  # never woken by a read: activated, then put back
    changes = coll.changes[start:]  # each activation (plan, run, verification) put back at once
    per = {t: [status for name, status in changes if name == t] for t in ("hot1", "cold1", "off1")}
    assert per["hot1"] == [] and per["cold1"] and per["off1"]
    assert per["cold1"] == ["HOT", "COLD"] * (len(per["cold1"]) // 2)
    assert per["off1"] == ["HOT", "FROZEN"] * (len(per["off1"]) // 2)


def test_a_pinned_inactive_tenant_is_a_plan_error(weaviate_emu: WeaviateEmulator) -> None:
    source(weaviate_emu)
    with connect(weaviate_emu.uri("Src", tenant="cold1")) as w:
        info = w.describe()
        assert info is not None and [f["severity"] for f in info.findings] == ["error"]
    with connect(weaviate_emu.uri("Src", tenant="off1", tenants="activate")) as w:
        assert w.count() == SIZES["off1"]
    with connect(weaviate_emu.uri("Src", tenant="cold1", tenants="active")) as w:  # skipped, not an error
        assert w.count() == 0 and w.scan(None, 10)[1] is None
    assert states(weaviate_emu) == STATES and weaviate_emu.store.collections["Src"].woken == []


def test_the_emulator_wakes_a_cold_tenant_on_read_with_auto_activation(weaviate_emu: WeaviateEmulator) -> None:
    """What vmkit must avoid: with autoTenantActivation one read loads a cold tenant for good."""
    from weaviate.exceptions import WeaviateQueryError

    source(weaviate_emu)
    client = weaviate_emu.client()
    try:
        docs = client.collections.get("Src")
        assert docs.with_tenant("cold1").aggregate.over_all(total_count=True).total_count == SIZES["cold1"]
        with pytest.raises(WeaviateQueryError, match="not active"):  # offloaded: not woken by a read
            docs.with_tenant("off1").query.fetch_objects(limit=1)
        assert {n: t.activity_status.value for n, t in docs.tenants.get().items()} == {
            "hot1": "ACTIVE", "cold1": "ACTIVE", "off1": "OFFLOADED"}
    finally:
        client.close()
    assert weaviate_emu.store.collections["Src"].woken == ["cold1"]


def test_a_scan_resumed_after_a_crash_puts_the_tenants_it_activated_back(weaviate_emu: WeaviateEmulator) -> None:
    source(weaviate_emu)
    first = connect(weaviate_emu.uri("Src", tenants="activate", tenant_streams="1"))
    batch, cursor = first.scan(None, 8)  # cold1 comes first (bytewise), activated for reading
    assert batch.namespace == "cold1" and weaviate_emu.store.collections["Src"].tenants["cold1"] == "HOT"
    assert cursor is not None and '"woken":{"cold1":"INACTIVE"}' in cursor
    first._activity.woken.clear()  # the process dies: nothing it holds in memory puts cold1 back
    first.close()
    with connect(weaviate_emu.uri("Src", tenants="activate")) as resumed:
        read = len(batch)
        while cursor is not None:
            batch, cursor = resumed.scan(cursor, 8)
            read += len(batch)
    assert read == sum(SIZES.values())
    assert states(weaviate_emu) == STATES and weaviate_emu.store.collections["Src"].woken == []
