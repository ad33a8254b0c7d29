"""A LocalCluster of two worker processes, shared by the module's tests (start-up costs ~1 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    from vmkit.migration.distributed import local_cluster

    with local_cluster(2, dashboard=False) as cluster, distributed.Client(cluster) as client:
        yield client


def set_worker_env(client: Any, env: dict[str, str]) -> None:
    """Environment variables on every worker (the emulators' hosts and test keys), as a
    deployment would set them where the workers start."""
    client.run(_setenv, env)


def _setenv(env: dict[str, str]) -> None:
    os.environ.update(env)  # (a bound os.environ.update would update a pickled copy)
