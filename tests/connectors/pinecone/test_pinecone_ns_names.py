"""Namespace names a Pinecone index cannot hold (not ASCII, NUL, over 512 characters: the
SDK's rule) stop a migration into it before anything of that namespace is written, naming
the namespace; nothing is dead-lettered. Pinecone source namespaces read as they are."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from emulators.pinecone_emulator import PineconeEmulator

from vmkit import Migration
from vmkit.connectors import connect
from vmkit.connectors.base import TargetSpec
from vmkit.connectors.pinecone.write import namespace_problem
from vmkit.core.errors import InvalidData, PlanError, TerminalError
from vmkit.core.records import RecordBatch

pytest.importorskip("pinecone")


def _batch(ns: str, n: int = 5) -> RecordBatch:
    vecs = np.arange(1, 4 * n + 1, dtype=np.float32).reshape(n, 4)
    return RecordBatch([f"id-{i}" for i in range(n)], vecs, [{"i": i} for i in range(n)],
                       namespace=ns)


@pytest.mark.parametrize("name,why", [("café", "not ASCII"), ("a\x00b", "NUL"),
                                      ("n" * 513, "513 characters")])
def test_the_connector_refuses_a_namespace_before_any_request(pinecone_emu: PineconeEmulator, name: str,
                                                              why: str) -> None:
    pinecone_emu.create_index("dst", 4)
    conn = connect("pinecone://dst")
    with pytest.raises(TerminalError, match=why) as info:
        conn.upsert(_batch(name))
    assert not isinstance(info.value, InvalidData)  # not the records' fault: no dead letters
    assert repr(name)[:40] in str(info.value)
    assert pinecone_emu.requests("upsert") == []


def test_names_the_sdk_accepts_are_written(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("dst", 4)
    conn = connect("pinecone://dst")
    for name in ("", "__default__", "ns x+%&#", "n" * 512, "\x01tab\there"):
        assert namespace_problem(name) is None
        conn.upsert(_batch(name, 1))
    assert {r.status for r in pinecone_emu.requests("upsert")} == {200}


def test_the_plan_refuses_a_namespace_the_target_cannot_take(pinecone_emu: PineconeEmulator,
                                                            tmp_path: Any) -> None:
    """Before any write: a plan error naming the namespace and why (the SDK's rule)."""
    pinecone_emu.create_index("dst", 4)
    src = connect("memory://src")
    src.create(TargetSpec("src", 4, "cosine"))
    for ns in ("good", "été", "x" * 513):
        src.upsert(_batch(ns))
    with pytest.raises(PlanError) as refused:
        Migration.create("memory://src", "pinecone://dst", migration_id="plan-names", state=tmp_path / "s.db")
    assert "cannot take namespace 'été': it is not ASCII" in str(refused.value)
    assert "513 characters, over Pinecone's 512" in str(refused.value)
    assert "'good'" not in str(refused.value)
    assert not pinecone_emu.requests("upsert")


def test_a_migration_stops_naming_the_namespace_and_dead_letters_nothing(
        pinecone_emu: PineconeEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A namespace that appears after planning still stops the run before its first write."""
    pinecone_emu.create_index("dst", 4)
    src = connect("memory://src")
    src.create(TargetSpec("src", 4, "cosine"))
    for ns in ("good", "été"):
        src.upsert(_batch(ns))
    with monkeypatch.context() as planned_without_it:  # as if 'été' came after planning
        planned_without_it.setattr("vmkit.connectors.pinecone.connector.PineconeConnector.namespace_problem",
                                   lambda self, ns: None)
        m = Migration.create("memory://src", "pinecone://dst", migration_id="names",
                             state=tmp_path / "s.db", batch_size=10, retry_initial_s=0.001)
    with pytest.raises(TerminalError, match="cannot take namespace 'été'"):
        m.run()
    st = m.status()
    assert st.state == "in_progress" and st.records_rejected == 0
    assert m.store.query("SELECT count(*) FROM rejections") == [(0,)]
    assert not [r for r in pinecone_emu.requests("upsert") if r.namespace == "été"]


def test_pinecone_source_namespaces_read_as_they_are(pinecone_emu: PineconeEmulator) -> None:
    pinecone_emu.create_index("src", 4)
    pinecone_emu.seed("src", [("a", [1.0, 0, 0, 0], None, None)], namespace="ns \x01+")
    batch, _ = connect("pinecone://src").scan(None, 10)
    assert (batch.namespace, batch.ids) == ("ns \x01+", ["a"])
