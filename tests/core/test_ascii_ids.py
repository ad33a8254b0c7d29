"""Capabilities.id_ascii_only: map_batch rejects a target id with a non-ASCII character up front
(field ``id``, the character and its position in the reason); other targets take it."""

from __future__ import annotations

import numpy as np

from vmkit import TargetSpec, connect
from vmkit.core.ids import ORIGINAL_ID_KEY
from vmkit.core.records import RecordBatch
from vmkit.planning.planner import plan as make_plan
from vmkit.planning.transform import map_batch


def plan_into_strings(ascii_only: bool):
    src = connect("memory://src")
    src.create(TargetSpec("src", 2, "cosine"))
    p = make_plan(src, connect("memory://dst?ids=string"))
    p.caps["id_ascii_only"] = ascii_only  # a Plan is plain data: Pinecone's rule on a memory target
    return p


def batch() -> RecordBatch:
    # the last one came back from an earlier migration: its original (non-ASCII) id is restored
    return RecordBatch(["plain-1", "Ünïcode", "a b~\t", "3f2c"], np.ones((4, 2), np.float32),
                       [{}, {}, {}, {ORIGINAL_ID_KEY: "zoë"}])


def test_non_ascii_target_ids_are_rejected_with_field_and_position():
    out = map_batch(batch(), plan_into_strings(True))
    assert out.batch.ids == ["plain-1", "a b~\t"]
    assert out.read == 4 and len(out.rejected) == 2
    assert [(r.record_id, r.field, r.reason) for r in out.rejected] == [
        ("Ünïcode", "id", "id has non-ASCII characters; the target takes ASCII ids only ('Ü' at position 0)"),
        ("3f2c", "id", "id has non-ASCII characters; the target takes ASCII ids only ('ë' at position 2)"),
    ]


def test_targets_without_the_rule_take_them():
    out = map_batch(batch(), plan_into_strings(False))
    assert out.batch.ids == ["plain-1", "Ünïcode", "a b~\t", "zoë"] and not out.rejected
