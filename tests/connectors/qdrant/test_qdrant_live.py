"""Against a real Qdrant server, when one is configured: VMKIT_QDRANT_URL=host:6333
(and QDRANT_API_KEY if the server needs one)."""

from __future__ import annotations

import os
import uuid

import pytest

from vmkit import Migration, connect
from vmkit.connectors.datasets import fill

URL = os.environ.get("VMKIT_QDRANT_URL", "")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="VMKIT_QDRANT_URL is not set (e.g. localhost:6333)"),
]


def test_local_to_server_and_back(tmp_path):
    name = f"vmkit_live_{uuid.uuid4().hex[:8]}"
    local = f"qdrant://{tmp_path}/src?collection=docs"
    remote = f"qdrant://{URL.removeprefix('http://')}/{name}"
    fill(local, 500, 16, metric="dot")
    try:
        st = Migration.create(local, remote, migration_id="up", state=tmp_path / "s.db").run()
        assert st.state == "completed" and st.verification == "passed"
        back = f"qdrant://{tmp_path}/back?collection=docs"
        st = Migration.create(remote, back, migration_id="down", state=tmp_path / "s.db").run()
        assert st.state == "completed" and st.verification == "passed"
    finally:
        with connect(remote) as conn:
            if conn.describe() is not None:
                conn.drop()
