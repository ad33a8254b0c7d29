"""Shared test set-up: emulators importable as ``emulators.*``; memory stores reset per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> None:
    from vmkit.connectors.memory import reset_memory_stores

    reset_memory_stores()
