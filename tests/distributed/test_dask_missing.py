"""Without dask installed, the Dask executor names the extra to install, before any write."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vmkit import Migration
from vmkit.core.errors import ConfigError


def test_without_dask_the_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    mig = Migration.create("synthetic://s?n=10&dim=4", "sink://t", state=tmp_path / "s.db", partitions=2)
    with pytest.raises(ConfigError, match=r"^the Dask executor needs dask.distributed: pip install 'vmkit\[dask\]'$"):
        mig.run(executor="dask", workers=2)
    assert mig.store.get(mig.id).state == "not_started"  # refused before the target was created
