"""Parquet connector: a directory of part files plus a manifest (``parquet:///abs/dir``)."""

from __future__ import annotations
