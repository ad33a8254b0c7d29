"""A LocalCluster of two worker processes, shared by the module's tests (start-up costs ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    from vmkit.migration.distributed import local_cluster

    with local_cluster(2, dashboard=False) as cluster, distributed.Client(cluster) as client:
        yield client

