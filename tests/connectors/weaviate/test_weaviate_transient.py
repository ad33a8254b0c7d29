"""Weaviate's temporary errors are retried (bounded), never dead-lettered, never terminal.

The server classes "not enough memory", "store is read-only" (disk pressure) and "no space left
on device" as temporary (``entities/errors/transient.go``) and returns them per object inside a
successful batch; its gRPC handlers return plain errors, so a replication failure arrives as
status UNKNOWN with the text. The emulator says the same (tests/emulators/weaviate_emulator.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")

from emulators.weaviate_emulator import (
    CONSISTENCY_ALL,
    LAZY_LOAD,
    NO_SPACE,
    NOT_ENOUGH_MEMORY,
    READ_ONLY,
    Faults,
    WeaviateEmulator,
)

from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.weaviate.errors import is_transient_status, is_transient_text
from vmkit.core.errors import TerminalError, TransientError
from vmkit.core.records import RecordBatch

DIM = 8


def records(n: int, start: int = 0) -> RecordBatch:
    rng = np.random.default_rng(start)
    return RecordBatch([str(uuid.UUID(int=i * 7919 + 11)) for i in range(start, start + n)],
                       rng.standard_normal((n, DIM)).astype(np.float32),
                       [{"title": f"doc {i}", "rank": i} for i in range(start, start + n)])


def test_the_servers_temporary_texts_are_transient() -> None:
    for text in (READ_ONLY, NO_SPACE, NOT_ENOUGH_MEMORY, CONSISTENCY_ALL, LAZY_LOAD):
        assert is_transient_text(text)
    assert is_transient_status("UNKNOWN", CONSISTENCY_ALL)
    assert not is_transient_status("UNKNOWN", "could not find class Docs in schema")
    assert not is_transient_text("invalid integer property 'rank' on class 'Docs'")


@pytest.mark.parametrize("text", [READ_ONLY, NO_SPACE, NOT_ENOUGH_MEMORY])
def test_temporary_per_object_errors_are_retried(weaviate_emu: WeaviateEmulator, text: str) -> None:
    with connect(weaviate_emu.uri("Docs", object_retries=3)) as w:
        w.create(TargetSpec("Docs", DIM, "cosine"))
        weaviate_emu.faults = Faults(batch_fail_next=[text] * 3)  # three calls fail, the fourth succeeds
        w.upsert(records(30))
        assert weaviate_emu.faults.injected == 3 and w.count() == 30


def test_a_long_episode_is_transient_not_invalid_data(weaviate_emu: WeaviateEmulator) -> None:
    """Retries are bounded: past them the batch fails as transient (the run retries it later,
    then stops), never as refused records for the dead-letter table."""
    with connect(weaviate_emu.uri("Docs", object_retries=2)) as w:
        w.create(TargetSpec("Docs", DIM, "cosine"))
        weaviate_emu.faults = Faults(batch_fail_next=[READ_ONLY] * 10)
        with pytest.raises(TransientError, match="store is read-only"):
            w.upsert(records(10))
        assert weaviate_emu.faults.injected == 3  # the first try and two retries


def test_unknown_with_a_temporary_text_is_transient(weaviate_emu: WeaviateEmulator) -> None:
    with connect(weaviate_emu.uri("Docs")) as w:
        w.create(TargetSpec("Docs", DIM, "cosine"))
        w.upsert(records(5))
        weaviate_emu.faults = Faults(fail_next=["UNKNOWN: " + CONSISTENCY_ALL], methods=frozenset({"Search"}))
        with pytest.raises(TransientError, match="consistency level ALL"):
            w.scan(None, 10)
        weaviate_emu.faults = Faults(fail_next=["UNKNOWN: " + LAZY_LOAD], methods=frozenset({"Search"}))
        with pytest.raises(TransientError, match="cannot load shard"):
            w.scan(None, 10)
        weaviate_emu.faults = Faults(fail_next=["UNKNOWN: " + NOT_ENOUGH_MEMORY], methods=frozenset({"BatchObjects"}))
        with pytest.raises(TransientError, match="not enough memory"):
            w.upsert(records(5, 5))
        weaviate_emu.faults = Faults(fail_next=["UNKNOWN: no such prop with name 'x'"], methods=frozenset({"Search"}))
        with pytest.raises(TerminalError):
            w.scan(None, 10)


def run(tmp_path: Path, source: str, target: str, mid: str) -> Migration:
    m = Migration.create(source, target, state=str(tmp_path / "state.db"), migration_id=mid,
                         batch_size=50, sample_rate=1.0, retry_initial_s=0.01)
    status = m.run()
    assert status.state == "completed", str(status)
    return m


def test_qdrant_to_weaviate_through_a_read_only_episode(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    """A disk-pressure episode longer than the connector's own retries: every record arrives,
    none is dead-lettered, verification passes in full."""
    n = 300
    source = f"qdrant://{tmp_path}/q?collection=c"
    with connect(source) as q:
        q.create(TargetSpec("c", DIM, "cosine"))
        q.upsert(records(n))
    weaviate_emu.faults = Faults(batch_fail_next=[READ_ONLY] * 6 + [NO_SPACE] * 2 + [NOT_ENOUGH_MEMORY] * 2)
    m = run(tmp_path, source, weaviate_emu.uri("Docs"), "read-only")
    status = m.status()
    assert (status.records_written, status.records_rejected) == (n, 0)
    assert status.verification == "passed" and weaviate_emu.faults.injected == 10
    with connect(weaviate_emu.uri("Docs")) as w:
        assert w.count() == n


def test_unknown_errors_during_a_migration_are_retried(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    n = 120
    with connect(weaviate_emu.uri("Src")) as w:
        w.create(TargetSpec("Src", DIM, "dot"))
        w.upsert(records(n))
    weaviate_emu.faults = Faults(fail_next=["UNKNOWN: " + CONSISTENCY_ALL] * 2 + ["UNKNOWN: " + NOT_ENOUGH_MEMORY,
                                   "UNKNOWN: " + LAZY_LOAD], methods=frozenset({"Search", "BatchObjects"}))
    m = run(tmp_path, weaviate_emu.uri("Src"), weaviate_emu.uri("Dst"), "unknown")
    status = m.status()
    assert (status.records_written, status.records_rejected) == (n, 0)
    assert status.verification == "passed" and weaviate_emu.faults.injected == 4
