"""pgvector (PostgreSQL) connector: see connector.py."""

from __future__ import annotations
