"""Pytest fixtures for the Pinecone emulator (``pinecone_emu``, ``pinecone_sdk_sleeps``), loaded
for every test by the root conftest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulators.pinecone_emulator import EMU_KEY, PineconeEmulator


@pytest.fixture
def pinecone_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[PineconeEmulator]:
    """A running emulator; the SDK finds it through its own environment variables."""
    from pinecone._internal import http_client

    # The SDK keeps a process-wide retry budget per host: earlier tests must not drain ours.
    monkeypatch.setattr(http_client, "_budget_registry", http_client._BudgetRegistry())
    with PineconeEmulator(api_key=EMU_KEY, seed=1234) as e:
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", e.url)
        monkeypatch.setenv("PINECONE_API_KEY", e.api_key)
        yield e


@pytest.fixture
def pinecone_sdk_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the SDK's retry back-off delays instead of sleeping them.

    ``_retry_sleep`` is the seam the SDK provides for exactly this (its own unit tests no-op
    it); requests, retries and error decoding stay the SDK's own.
    """
    from pinecone._internal import http_client

    delays: list[float] = []
    monkeypatch.setattr(http_client, "_retry_sleep", delays.append)
    return delays
