"""The small helpers behind run_notebook and the notebooks (no kernel needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmkit.core.errors import ConfigError
from vmkit.notebook.notebooks import (
    credentials_present,
    notebook_path,
    parse_parameters,
    project_root,
    qdrant_dir_uri,
)


def test_parse_parameters_like_papermill() -> None:
    got = parse_parameters(["records=2000", "sample_rate=0.5", "interactive=False", "max_batches=None",
                            "source=qdrant:///data/a?collection=docs", "envs=['A', 'B']", "empty="])
    assert got == {"records": 2000, "sample_rate": 0.5, "interactive": False, "max_batches": None,
                   "source": "qdrant:///data/a?collection=docs", "envs": ["A", "B"], "empty": ""}
    with pytest.raises(ConfigError):
        parse_parameters(["no-equals-sign"])


def test_notebooks_are_found_by_short_name() -> None:
    assert notebook_path("02").name == "02_migrate.ipynb"
    assert notebook_path("03_validation_report.ipynb").name == "03_validation_report.ipynb"
    with pytest.raises(ConfigError):
        notebook_path("04")


def test_project_root_from_inside_notebooks(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "notebooks").mkdir()
    assert project_root(tmp_path / "notebooks") == tmp_path
    assert project_root(tmp_path) == tmp_path


def test_uris_are_absolute_and_credentials_are_never_echoed(tmp_path: Path, monkeypatch) -> None:
    assert qdrant_dir_uri("rel/dir") == f"qdrant://{Path('rel/dir').resolve()}?collection=docs"
    monkeypatch.setenv("SOME_KEY", "canary-value")
    monkeypatch.delenv("OTHER_KEY", raising=False)
    shown = credentials_present(["SOME_KEY", "OTHER_KEY"])
    assert shown == {"SOME_KEY": "set", "OTHER_KEY": "unset"} and "canary" not in str(shown)
