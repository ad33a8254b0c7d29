"""Pinecone takes ASCII ids only (the SDK and the service refuse others with a 400). The target's
capabilities say so (``id_ascii_only``), so such ids are planned and rejected up front with
field ``id``: counted in the plan, predicted by the dry run, never sent, never bisected."""

from __future__ import annotations

import numpy as np
import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit import Migration, TargetSpec, dry_run
from vmkit.connectors import connect
from vmkit.core.records import RecordBatch

pytest.importorskip("pinecone")

DIM, N = 8, 400
SPACES = ("", "eu")


def ids(ns: str) -> list[str]:
    """Mostly ASCII; every 29th id has a non-ASCII character somewhere."""
    odd = ("café", "naïve", "東京", "ö", "emoji-🙂")
    return [f"{odd[i % 5]}-{i}" if i % 29 == 3 else f"{ns or 'd'}-{i:04d}" for i in range(N)]


def non_ascii() -> set[tuple[str, str]]:
    return {(ns, rid) for ns in SPACES for rid in ids(ns) if not rid.isascii()}


@pytest.fixture
def source() -> str:
    conn = connect("memory://src")
    conn.create(TargetSpec("src", DIM, "cosine"))
    rng = np.random.default_rng(3)
    for ns in SPACES:
        conn.upsert(RecordBatch(ids(ns), rng.standard_normal((N, DIM)) + 0.1,
                                [{"i": i} for i in range(N)], namespace=ns))
    return "memory://src"


def test_non_ascii_ids_are_planned_predicted_and_rejected_up_front(
        source: str, pinecone_emu: PineconeEmulator, tmp_path) -> None:
    bad = non_ascii()
    assert len(bad) == 28
    m = Migration.create(source, "pinecone://dst", migration_id="a", state=tmp_path / "s.db",
                         batch_size=100, retry_initial_s=0.01)
    finding = [w for w in m.plan.warnings if w.field == "id" and "non-ASCII" in w.message]
    assert len(finding) == 1 and finding[0].count == len(bad)  # the whole source was profiled
    assert f"({len(bad)} of {len(SPACES) * N} sampled)" in finding[0].message

    predicted = dry_run(m.plan, sample=None)
    assert {(r.namespace, r.record_id) for r in predicted.rejections} == bad
    assert predicted.would_write == len(SPACES) * N - len(bad) and predicted.balanced

    st = m.run()
    assert st.state == "completed" and st.verification == "passed", str(st)
    assert st.records_read == len(SPACES) * N == st.records_written + st.records_rejected
    assert st.records_rejected == len(bad) and st.balanced
    rows = m.store.query("SELECT namespace, record_id, field, reason FROM rejections")
    assert {(ns, rid) for ns, rid, _, _ in rows} == bad and len(rows) == len(bad)
    assert all(f == "id" and reason.startswith("id has non-ASCII characters") for _, _, f, reason in rows)
    assert ("", "café-235", "id", "id has non-ASCII characters; the target takes ASCII ids only "
            "('é' at position 3)") in rows
    assert pinecone_emu.requests("upsert", 400) == []  # nothing refused, so nothing bisected
    with connect("pinecone://dst") as pc:
        assert pc.describe().namespaces == {ns: N - sum(1 for k in bad if k[0] == ns) for ns in SPACES}
        got = pc.fetch([rid for rid in ids("eu") if rid.isascii()][:50], "eu")
        assert len(got) == 50
