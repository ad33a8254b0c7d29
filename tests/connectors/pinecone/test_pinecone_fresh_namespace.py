"""A namespace written just before a scan is found and migrated though describe_index_stats
does not name it yet (stats lag writes more than list and fetch do): vmkit asks the namespaces
listing (``Index.list_namespaces``) too, and falls back to stats asked again where the listing
is refused."""

from __future__ import annotations

from typing import Any

import pytest
from emulators import pinecone_emulator
from emulators.pinecone_emulator import PineconeEmulator

from vmkit import Migration
from vmkit.connectors import connect

pinecone = pytest.importorskip("pinecone")


def _rows(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i:03d}", "values": [float(i + 1), 0.5, 0.25, 0.125],
             "metadata": {"i": i}} for i in range(n)]


@pytest.fixture
def src(pinecone_emu: PineconeEmulator) -> Any:
    pinecone_emu.create_index("src", 4)
    pinecone_emu.seed("src", [(r["id"], r["values"], r["metadata"], None) for r in _rows("old", 30)],
             namespace="a")
    return pinecone.Pinecone().index(host=pinecone_emu.host("src"))


def test_a_namespace_stats_do_not_name_yet_is_found_and_migrated(pinecone_emu: PineconeEmulator, src: Any,
                                                                 tmp_path: Any) -> None:
    m = Migration.create("pinecone://src", "memory://dst", migration_id="fresh",
                         state=tmp_path / "s.db", batch_size=16, retry_initial_s=0.01)
    # Written after the plan read stats; stats will not count it for ten minutes, while list
    # and fetch see it at once.
    pinecone_emu.faults.stats_lag_ms = 600_000
    src.upsert(vectors=_rows("new", 25), namespace="fresh ns")
    assert "fresh ns" not in src.describe_index_stats().namespaces
    st = m.run()
    assert st.state == "completed" and st.verification == "passed"
    assert st.records_read == st.records_written == 55
    got = connect("memory://dst").fetch([f"new-{i:03d}" for i in range(25)], "fresh ns")
    assert len(got) == 25
    assert pinecone_emu.requests("list_namespaces")  # found by the listing, not by stats


def test_without_the_listing_stats_are_asked_again_before_the_scan_ends(
        pinecone_emu: PineconeEmulator, src: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the service refuses ``GET /namespaces``, stats alone name namespaces; a scan asks
    them again once it has read every namespace they named, and reads one written since."""
    routes = dict(pinecone_emulator._DATA_ROUTES)
    del routes[("GET", "/namespaces")]
    monkeypatch.setattr(pinecone_emulator, "_DATA_ROUTES", routes)
    conn = connect("pinecone://src?list_streams=1")
    batch, cursor = conn.scan(None, 100)
    assert batch.namespace == "a" and len(batch) == 30
    src.upsert(vectors=_rows("new", 5), namespace="late")  # stats count it at once (no lag)
    seen = []
    while cursor is not None:
        batch, cursor = conn.scan(cursor, 100)
        seen += [(batch.namespace, rid) for rid in batch.ids]
    assert seen == [("late", f"new-{i:03d}") for i in range(5)]
    assert [r.status for r in pinecone_emu.requests("?")] == [404]  # the refused listing, asked once
