"""The way back through real engines (Weaviate emulator, embedded Qdrant): a faithful
migration maps back to its source records, with the counts reconciled per namespace."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("weaviate")
pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning")


from copying import fill, rich_records  # noqa: E402

from vmkit import Migration, connect  # noqa: E402
from vmkit.connectors import open_target  # noqa: E402
from vmkit.core.records import RecordBatch  # noqa: E402
from vmkit.migration.verification import verify  # noqa: E402

DIM = 8


def records(ids: list[Any], ns: str = "", seed: int = 0) -> RecordBatch:
    return rich_records(ids, ns, seed, DIM)


def seed(uri: str, metric: str, batches: list[RecordBatch]) -> None:
    fill(uri, metric, batches, DIM)


def migrate_and_reverse(tmp_path: Path, source: str, target: str, mid: str, **plan_opts: Any):
    m = Migration.create(source, target, state=str(tmp_path / "state.db"), migration_id=mid,
                         batch_size=40, retry_initial_s=0.01, **plan_opts)
    status = m.run()
    assert status.state == "completed", str(status)
    with connect(source) as src, open_target(target, m.plan.target_routes) as dst:
        result = verify(src, dst, m.plan, reverse=True, scan_size=40)
    m.close()
    return result


@pytest.mark.parametrize("multi_tenancy", [True, False])
def test_namespaces_to_weaviate_tenants_or_a_field_map_back(weaviate_emu, tmp_path, multi_tenancy):
    seed("memory://src", "cosine", [records([f"doc-{i}" for i in range(30)], ns="prod"),
                                    records([f"doc-{i}" for i in range(20)], ns="dev", seed=3)])
    target = weaviate_emu.uri("Docs", multi_tenancy="true") if multi_tenancy else weaviate_emu.uri("Docs")
    result = migrate_and_reverse(tmp_path, "memory://src", target, f"w-{multi_tenancy}")
    assert result.passed and result.reverse.checked == 50, str(result)
    assert {ns: c["read"] for ns, c in result.namespace_counts.items()} == {"dev": 20, "prod": 30}


def test_weaviate_renamed_keys_map_back(weaviate_emu, tmp_path):
    keys = {"Title": "t", "user-id": 7, "id": "x", "name": "n", "vector": [1.5], "ok": True}
    src = RecordBatch([f"r{i}" for i in range(12)], np.ones((12, DIM), np.float32) * np.arange(1, 13)[:, None],
                      [dict(keys) for _ in range(12)])
    seed("memory://src", "dot", [src])
    result = migrate_and_reverse(tmp_path, "memory://src", weaviate_emu.uri("Docs"), "renames")
    assert result.passed and result.reverse.checked == 12, str(result)


def test_weaviate_tenants_to_qdrant_map_back(weaviate_emu, tmp_path):
    uri = weaviate_emu.uri("Docs", multi_tenancy="true")
    seed(uri, "dot", [records([str(uuid.UUID(int=i + 1)) for i in range(40)], ns="acme"),
                      records([str(uuid.UUID(int=i + 1)) for i in range(25)], ns="zeta", seed=2)])
    result = migrate_and_reverse(tmp_path, uri, f"qdrant://{tmp_path}/q?collection=c", "wq")
    assert result.passed and result.reverse.checked == 65, str(result)
    assert {ns: c["source"] for ns, c in result.namespace_counts.items()} == {"acme": 40, "zeta": 25}


def test_qdrant_int_and_uuid_ids_to_weaviate_map_back(weaviate_emu, tmp_path):
    source = f"qdrant://{tmp_path}/q?collection=c"
    seed(source, "euclidean", [records(list(range(1, 50))), records([str(uuid.UUID(int=7 * i + 1)) for i in range(9)], seed=1)])
    result = migrate_and_reverse(tmp_path, source, weaviate_emu.uri("Docs"), "qw")
    assert result.passed and result.reverse.checked == 58, str(result)
