"""The LanceDB connector's record of the id hashes it appended answers as a set would."""

from __future__ import annotations

import numpy as np

from vmkit.connectors.lancedb.written_keys import WrittenKeys


def test_written_keys_answer_as_a_set_over_many_batches() -> None:
    rng = np.random.default_rng(7)
    keys, seen = WrittenKeys(), set()
    extremes = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0], np.int64)
    for size in [1, 3, 1000, 7, 10_000, 2, 500, 10_000, 1, 64] * 3:
        batch = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size, dtype=np.int64)
        fresh = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 50, dtype=np.int64)
        assert keys.any_of(fresh) == bool(seen & set(fresh.tolist()))
        assert keys.any_of(batch) == bool(seen & set(batch.tolist()))
        keys.add(np.concatenate([batch, batch[:1]]))  # a key twice in one batch
        seen |= set(batch.tolist())
        assert keys.any_of(batch[-1:]) and keys.any_of(np.concatenate([fresh, batch[:1]]))
        assert len(keys) == len(seen)
    assert not keys.any_of(extremes) or bool(seen & set(extremes.tolist()))
    keys.add(extremes)
    assert keys.any_of(extremes[:1]) and keys.any_of(extremes[1:2])
    assert not WrittenKeys().any_of(extremes)
