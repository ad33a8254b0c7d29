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


def test_a_panel_thread_drawing_at_exit_does_not_abort_the_interpreter():
    """A daemon thread inside matplotlib's C++ text layout when the interpreter tears down
    aborts the process; the panel's background threads are ended at exit first."""
    import subprocess
    import sys
    import textwrap

    child = textwrap.dedent("""
        import threading
        from matplotlib.figure import Figure
        from vmkit.notebook import background
        from vmkit.notebook.live import figure_png

        drawing = threading.Event()
        def loop():  # the panel's live figure: three axes laid out tight
            while not background.closing.is_set():
                fig = Figure(figsize=(13, 3.4))
                for ax in fig.subplots(1, 3):
                    ax.plot(range(100))
                    ax.set_title("throughput over time " * 2)
                fig.tight_layout()
                drawing.set()
                figure_png(fig)
        background.start(loop, "plots")
        drawing.wait(30)
    """)
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]


def test_working_says_how_long_a_step_took_and_whether_it_failed(caplog):
    import logging

    import pytest

    from vmkit.notebook.busy import working

    with caplog.at_level(logging.INFO, logger="vmkit.notebook.busy"):
        with working("planning"):
            pass
        with pytest.raises(ValueError), working("dry run"):
            raise ValueError("bad")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "planning ..." and lines[1].startswith("planning: done in ")
    assert lines[3].startswith("dry run: failed after ")
