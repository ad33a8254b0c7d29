"""A key whose values change type across records (``1``, ``"1"``, ``1.5``, ``true``) or that
holds nested lists of several types: Weaviate fixes a property's type from the first value it
gets and refuses the rest, so the plan stores every value of such a key as JSON text, says so,
and the copy is verified exactly (the reverse check decodes the text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

pytest.importorskip("weaviate")

from emulators.weaviate_emulator import WeaviateEmulator

from vmkit import Migration, TargetSpec, connect
from vmkit.core.records import RecordBatch

N = 40


def test_keys_of_several_types_travel_as_json_text(weaviate_emu: WeaviateEmulator, tmp_path: Path) -> None:
    src = connect("memory://typed-src")
    src.create(TargetSpec("typed-src", 4, "dot"))
    metas = [{"mixed": [1, "1", 1.5, True][i % 4], "steady": i, "tree": {"a": [1, {"b": None}]} if i % 2 else {"a": [2]}}
             for i in range(N)]
    src.upsert(RecordBatch([f"r{i}" for i in range(N)], np.ones((N, 4), np.float32), metas))
    target = weaviate_emu.uri("Typed")
    m = Migration.create("memory://typed-src", target, migration_id="typed", state=tmp_path / "s.db",
                         batch_size=10, sample_rate=1.0)
    assert m.plan.text_fields == ["mixed", "tree"]
    said = {w.field: w for w in m.plan.warnings}
    assert "several types" in said["metadata.mixed"].message and "JSON text" in said["metadata.mixed"].policy
    status = m.run()
    assert (status.state, status.verification, status.records_written) == ("completed", "passed", N), str(status)
    with connect(target) as dst:
        got = {rec_meta["_vmkit_source_id"]: rec_meta for rec_meta in _all_metadata(dst)}
    for i, meta in enumerate(metas):
        stored = got[f"r{i}"]
        assert orjson.loads(stored["mixed"]) == meta["mixed"] and type(orjson.loads(stored["mixed"])) is type(meta["mixed"])
        assert orjson.loads(stored["tree"]) == meta["tree"]
        assert stored["steady"] == i  # a key of one type is left as it is


def _all_metadata(conn):
    cursor = None
    while True:
        batch, cursor = conn.scan(cursor, 100)
        yield from batch.metadata
        if cursor is None:
            return
