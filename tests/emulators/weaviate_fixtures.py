"""Pytest fixtures for the Weaviate emulator (``server``, ``emu``). A test module asks for them
with ``pytest_plugins = ["emulators.weaviate_fixtures"]``."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from emulators.weaviate_emulator import WeaviateEmulator


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateEmulator]:
    with WeaviateEmulator() as emu:
        yield emu


@pytest.fixture
def emu(server: WeaviateEmulator, monkeypatch: pytest.MonkeyPatch) -> WeaviateEmulator:
    """A reset emulator; the client's and the connector's retry sleeps (1, 2, 4... s between
    UNAVAILABLE retries) skipped, and no API key from the caller's environment."""
    server.reset()
    no_sleep = types.SimpleNamespace(sleep=lambda s: None)
    monkeypatch.setattr("weaviate.retry.time", no_sleep)
    monkeypatch.setattr("vmkit.connectors.weaviate.time", no_sleep)
    monkeypatch.delenv("WEAVIATE_API_KEY", raising=False)
    return server
