"""Milvus connector (pymilvus): Milvus Lite in process, or a Milvus / Zilliz server."""

from __future__ import annotations
