"""Shared test set-up: emulators importable as ``emulators.*``; memory stores reset per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The emulators' fixtures, by distinct names (pinecone_emu, pinecone_sdk_sleeps, weaviate_emu...),
# and a real PostgreSQL with pgvector (pg_server, pg_db), started only by tests that ask for it.
pytest_plugins = ["emulators.pinecone_fixtures", "emulators.weaviate_fixtures", "engines.postgres",
                  "engines.jupyterlab",  # lab_server, lab_page: JupyterLab in headless Chromium
                  "engines.chroma"]  # chroma_server: `chroma run` on a free port


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> None:
    from vmkit.connectors.memory import reset_memory_stores

    reset_memory_stores()
