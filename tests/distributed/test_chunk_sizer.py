"""Chunks sized by time: a fixed ``chunk_batches`` is kept; 0 aims at about a second a chunk."""

from __future__ import annotations

from vmkit.migration.chunk import BatchAck, ChunkAck
from vmkit.migration.distributed import ChunkSizer


def _ack(per_batch_s: float, batches: int = 4) -> ChunkAck:
    return ChunkAck("p", None, [BatchAck(None, str(i), 10, 10, [], "0", per_batch_s) for i in range(batches)])


def test_a_fixed_chunk_size_is_kept_whatever_the_batches_take() -> None:
    sizer = ChunkSizer(2)
    sizer.observe(_ack(0.001))
    assert sizer.batches() == 2


def test_automatic_chunks_start_small_then_take_about_a_second() -> None:
    sizer = ChunkSizer(0)
    assert sizer.batches() == ChunkSizer.FIRST  # nothing timed yet
    sizer.observe(_ack(0.01))  # 10 ms a batch: 100 batches make a second
    assert sizer.batches() == 100
    sizer.observe(ChunkAck("p", None, []))  # an empty acknowledgement says nothing about speed
    assert sizer.batches() == 100


def test_automatic_chunks_follow_a_slower_store_and_stay_within_bounds() -> None:
    sizer = ChunkSizer(0)
    sizer.observe(_ack(0.01))
    for _ in range(20):  # the store slows to 5 s a batch (a rate-limited service)
        sizer.observe(_ack(5.0))
    assert sizer.batches() == 1
    fast = ChunkSizer(0)
    fast.observe(_ack(1e-9))
    assert fast.batches() == ChunkSizer.MOST
