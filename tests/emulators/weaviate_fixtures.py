"""Pytest fixtures for the Weaviate emulator (``weaviate_server``, ``weaviate_emu``), loaded for
every test by the root conftest."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the emulator loads the Weaviate SDK's gRPC stubs: only when asked for
    from emulators.weaviate_emulator import WeaviateEmulator


@pytest.fixture(scope="session")
def weaviate_server() -> Iterator["WeaviateEmulator"]:
    """One emulator (REST + gRPC) for the session; ``weaviate_emu`` resets it per test."""
    from emulators.weaviate_emulator import WeaviateEmulator

    with WeaviateEmulator() as server:
        yield server


@pytest.fixture
def weaviate_emu(weaviate_server: "WeaviateEmulator", monkeypatch: pytest.MonkeyPatch) -> "WeaviateEmulator":
    """The emulator, emptied, with no key in the environment, and no real waiting: the client
    sleeps 1, 2, 4... s between UNAVAILABLE retries and the connector between its own."""
    weaviate_server.reset()
    no_sleep = types.SimpleNamespace(sleep=lambda s: None)
    monkeypatch.setattr("weaviate.retry.time", no_sleep)
    monkeypatch.setattr("vmkit.connectors.weaviate.connector.time", no_sleep)
    monkeypatch.delenv("WEAVIATE_API_KEY", raising=False)
    return weaviate_server
