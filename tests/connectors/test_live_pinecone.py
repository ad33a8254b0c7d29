"""Whole migrations into and out of a real Pinecone index, when one is configured
(``PINECONE_API_KEY`` and ``VMKIT_PINECONE_LIVE_INDEX``, an existing serverless index vmkit may
write to; see docs/live-tests.md): records go into a namespace of the test's own, are verified
in full, read back out, and deleted at the end."""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import pytest

from vmkit import Migration, TargetSpec, connect
from vmkit.core.records import RecordBatch

INDEX = os.environ.get("VMKIT_PINECONE_LIVE_INDEX", "")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (INDEX and os.environ.get("PINECONE_API_KEY")),
                       reason="pinecone-live: PINECONE_API_KEY and VMKIT_PINECONE_LIVE_INDEX not "
                              "set (a serverless index vmkit may write to)"),
]


def test_memory_to_pinecone_and_back_verified(tmp_path: Any) -> None:
    ns = f"vmkit-live-{uuid.uuid4().hex[:8]}"
    target = connect(f"pinecone://{INDEX}?namespace={ns}")
    info = target.describe()
    assert info is not None, f"index {INDEX} does not exist"
    ids = [f"live-{i:03d}" for i in range(120)] + ["odd id+%&#"]
    vecs = np.random.default_rng(3).standard_normal((len(ids), info.dimension)).astype(np.float32)
    src = connect("memory://live-src")
    src.create(TargetSpec("live-src", info.dimension, info.metric))
    src.upsert(RecordBatch(ids, vecs, [{"i": i} for i in range(len(ids))], namespace=ns))
    try:
        # The target URI names the namespace: verification then reads only it, not whatever
        # else the shared index holds.
        st = Migration.create("memory://live-src", f"pinecone://{INDEX}?namespace={ns}",
                              migration_id="up",
                              state=tmp_path / "s.db", batch_size=50).run()
        assert st.state == "completed" and st.verification == "passed", st
        assert st.records_written == len(ids)
        st = Migration.create(f"pinecone://{INDEX}?namespace={ns}", "memory://live-back",
                              migration_id="down", state=tmp_path / "s.db").run()
        assert st.state == "completed" and st.verification == "passed", st
        assert sorted(connect("memory://live-back").fetch(ids, ns).ids) == sorted(ids)
    finally:
        target.delete(ids, ns)
        target.close()
