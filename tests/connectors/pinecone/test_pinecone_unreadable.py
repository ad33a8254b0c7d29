"""No listed id is dropped: one a fetch does not return is fetched again with backoff, and
then handed over as a ``source_unreadable`` rejection (namespace, id, reason), counted as read.
The emulator's ``faults.unfetchable`` ids list and query but never fetch."""

from __future__ import annotations

from typing import Any

import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit.connectors import connect
from vmkit.core.records import SOURCE_UNREADABLE

pytest.importorskip("pinecone")

ODD_NS = "ns +%&# x"
ODD_IDS = ["doc 1", "doc+1", "a&b", "#frag", "50% off", "plain"] + [f"r{i:03d}" for i in range(30)]


@pytest.fixture
def odd(pinecone_emu: PineconeEmulator) -> PineconeEmulator:
    pinecone_emu.create_index("odd", 4)
    for ns in (ODD_NS, ""):
        pinecone_emu.seed("odd", [(rid, [i + 1.0, 0.5, 0.25, 0.125], {"i": i}, None)
                         for i, rid in enumerate(ODD_IDS)], namespace=ns)
    return pinecone_emu


def test_a_listed_id_that_never_fetches_is_unreadable_after_retries(odd: PineconeEmulator) -> None:
    odd.faults.unfetchable = {"doc 1", "plain"}
    conn = connect("pinecone://odd?refetch_attempts=4&refetch_wait=0.01&namespace="
                   "ns%20%2B%25%26%23%20x")
    batch, cursor = conn.scan(None, 100)
    assert conn.scan(cursor, 100)[1] is None
    assert sorted(batch.ids) == sorted(set(ODD_IDS) - {"doc 1", "plain"})
    assert sorted((r.namespace, r.record_id, r.field) for r in batch.rejected) == \
        [(ODD_NS, "doc 1", SOURCE_UNREADABLE), (ODD_NS, "plain", SOURCE_UNREADABLE)]
    assert all("4 fetches" in r.reason for r in batch.rejected)
    # one fetch of the listed ids, then 3 of the two still missing
    assert [r.records for r in odd.requests("fetch")] == [len(ODD_IDS), 2, 2, 2]


def test_an_id_that_fetches_late_is_read_not_rejected(odd: PineconeEmulator) -> None:
    """A listing can name a record before a fetch returns it: the re-fetch picks it up."""
    odd.faults.unfetchable = {"a&b"}
    conn = connect("pinecone://odd?refetch_attempts=6&refetch_wait=0.01&namespace=")
    real = conn.fetch

    def fetch(ids: list, namespace: str = "") -> Any:
        got = real(ids, namespace)
        if len(odd.requests("fetch")) == 2:  # two fetches missed it; the third finds it
            odd.faults.unfetchable = set()
        return got

    conn.fetch = fetch  # type: ignore[method-assign]
    batch, _ = conn.scan(None, 100)
    assert batch.rejected == [] and sorted(batch.ids) == sorted(ODD_IDS)
    assert batch.ids == sorted(ODD_IDS, key=str.encode)  # still in the order listed
    assert [r.records for r in odd.requests("fetch")] == [len(ODD_IDS), 1, 1]


def test_a_batch_whose_ids_all_fail_to_fetch_is_still_returned(odd: PineconeEmulator) -> None:
    odd.faults.unfetchable = set(ODD_IDS)
    conn = connect("pinecone://odd?refetch_attempts=2&refetch_wait=0&namespace=")
    seen, rejected, cursor = [], [], None
    while True:
        batch, cursor = conn.scan(cursor, 8)
        seen += batch.ids
        rejected += [r.record_id for r in batch.rejected]
        assert all(r.namespace == "" for r in batch.rejected)
        if cursor is None:
            break
    assert seen == [] and sorted(rejected) == sorted(ODD_IDS)


def test_a_migration_dead_letters_the_unreadable_id(odd: PineconeEmulator, tmp_path) -> None:
    """Through the runner: the rejection lands in the dead-letter table with its namespace
    and reason, is counted as read, and keeps the migration from completed."""
    from vmkit import Migration

    odd.faults.unfetchable = {"doc 1"}
    m = Migration.create("pinecone://odd?refetch_wait=0", "memory://dst", migration_id="u",
                         state=tmp_path / "s.db", batch_size=10, retry_initial_s=0.01)
    st = m.run()
    rows = m.store.query("SELECT namespace, record_id, field, reason FROM rejections")
    assert sorted((ns, rid, f) for ns, rid, f, _ in rows) == \
        [("", "doc 1", SOURCE_UNREADABLE), (ODD_NS, "doc 1", SOURCE_UNREADABLE)]
    assert all("5 fetches" in reason for *_, reason in rows)
    assert st.records_read == 2 * len(ODD_IDS) == st.records_written + st.records_rejected
    assert st.records_rejected == 2
    assert st.state == "in_progress" and st.scan_done
    assert "2 source records could not be read" in st.last_errors[0]
    unreadable = m.store.query("SELECT namespace, record_id FROM rejections WHERE field=?", SOURCE_UNREADABLE)
    assert sorted(unreadable) == [("", "doc 1"), (ODD_NS, "doc 1")]
