"""Migration options: what a user may tune, stored with the migration (never secrets)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vmkit.core.errors import ConfigError


@dataclass
class MigrationOptions:
    batch_size: int = 1000
    sample_rate: float = 0.1  # share of batches re-read and compared while running
    min_similarity: float = 0.98  # sampled cosine threshold
    # Records re-read per sampled batch, drawn at random from it (0: every record): a batch of
    # 10,000 costs a tenth of its write again when read back whole; full verification reads all.
    sample_records: int = 1000
    verify: bool = True  # full verification before "completed"; False is shown in status
    auto_rollback_rate: float | None = 0.05  # sampled failure rate that triggers rollback
    auto_rollback_min_records: int = 100  # ...once this many records were sampled
    freshness_s: float | None = None  # read-after-write wait; None: 10 s if eventually consistent
    retry_attempts: int = 8
    retry_initial_s: float = 0.2
    retry_cap_s: float = 30.0
    prefetch: int = 2  # batches read and mapped ahead of the writer
    write_workers: int = 4  # parallel write requests within one batch (targets that allow it)
    tune_interpreter: bool = True  # GIL handover and GC for the length of a run (vmkit.core.interpreter)
    nested_policy: str = "json"
    namespace_policy: str = "auto"  # auto | keep | field | collections | drop (vmkit.planning.planner)
    namespace_collection: str = "{collection}_{namespace}"  # collection name per namespace ("collections")
    # Records the source listed but could not hand over end in the dead-letter table as
    # source_unreadable and keep the migration from completed, unless accepted here.
    accept_unreadable: bool = False
    # The breaker: a run stops (resumable) when rejections pass this share of the records read
    # over the last ``reject_window`` batches (0 disables), or one reason rejects
    # ``max_reason_run`` records in a row.
    max_reject_rate: float = 0.01
    reject_window: int = 10
    max_reason_run: int = 100
    # Parts the plan splits the source into, for the Dask executor (0: not split), and the
    # batches a Dask worker copies before it acknowledges (a checkpoint per acknowledgement;
    # 0: as many as take about a second, vmkit.migration.distributed.ChunkSizer).
    partitions: int = 0
    chunk_batches: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ConfigError("sample_rate must be between 0 and 1")
        if self.sample_records < 0:
            raise ConfigError("sample_records must be 0 (every record of a sampled batch) or more")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError("min_similarity must be between -1 and 1")
        if not 0.0 <= self.max_reject_rate <= 1.0:
            raise ConfigError("max_reject_rate must be between 0 and 1 (0 disables the breaker)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MigrationOptions":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown migration options: {', '.join(sorted(unknown))}")
        return cls(**d)
