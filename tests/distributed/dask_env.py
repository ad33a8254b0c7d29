"""Environment variables on every Dask worker (the emulators' hosts and test keys), as a
deployment would set them where the workers start. A module of its own, not conftest: the
function travels to the workers by name, and there ``conftest`` is tests/conftest.py."""

from __future__ import annotations

import os
from typing import Any


def set_worker_env(client: Any, env: dict[str, str]) -> None:
    client.run(_setenv, env)


def _setenv(env: dict[str, str]) -> None:
    os.environ.update(env)  # (a bound os.environ.update would update a pickled copy)
