"""Record digests: their bytes are stored (the sync journal's content hashes), so they must not
change, whichever path computes them."""

from __future__ import annotations

import numpy as np

from vmkit.core.fingerprint import batch_digests
from vmkit.core.records import RecordBatch, SparseVector


def _batch(sparse: list | None = None) -> RecordBatch:
    return RecordBatch([7, "doc-1"], np.arange(6, dtype=np.float32).reshape(2, 3),
                       [{"b": 1, "a": [1.5, "x"]}, {}], sparse, namespace="ns")


def test_digests_keep_their_bytes() -> None:
    """Computed by the code before the common case got its own path (2026-11-26)."""
    assert [(key, d.hex()) for key, d in batch_digests(_batch())] == [
        (("ns", 7), "3232847241639e4e85a305e7f84939ea"),
        (("ns", "doc-1"), "f4b6dfec508bb5b12b72e3882070ab83"),
    ]


def test_the_common_case_hashes_as_the_general_path_does() -> None:
    """No sparse vectors, one dense vector, numbers as they are: the same digests as a batch
    that takes the general path (a sparse list of nothing), and different ones where a record
    really has a sparse vector or its numbers are compared as floats."""
    common = list(batch_digests(_batch()))
    assert list(batch_digests(_batch([None, None]))) == common
    with_sparse = list(batch_digests(_batch([SparseVector.of([1], [0.5]), None])))
    assert with_sparse[0] != common[0] and with_sparse[1] == common[1]
    as_float = list(batch_digests(_batch(), numbers_as_float=True))
    assert as_float[0] != common[0] and as_float[1] == common[1]  # {"b": 1} becomes {"b": 1.0}
