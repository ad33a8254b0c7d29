"""The house's floors hold: the import contract in pyproject.toml (lint-imports, run by `make
lint`) is kept by the code and broken by a wrong import, and no module imports itself back
through others (a cycle), which the layers contract alone cannot see inside one package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
grimp = pytest.importorskip("grimp")
LINT = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with this project's contracts, over the vmkit package found in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import one another, directly or through others (run-time
    imports: a mixin may name its host under TYPE_CHECKING)."""
    code = """
import sys, grimp
sys.setrecursionlimit(10000)
graph = grimp.build_graph("vmkit", exclude_type_checking_imports=True, cache_dir=None)
index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in graph.find_modules_directly_imported_by(v):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop(); on.discard(w); group.append(w)
            if w == v:
                break
        if len(group) > 1:
            out.append(sorted(group))
for m in sorted(graph.modules):
    if m not in index:
        visit(m)
print(repr(out))
"""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return eval(done.stdout)  # a list of lists of module names, printed by repr


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the vmkit package to plant wrong imports in."""
    root = tmp_path_factory.mktemp("house")
    shutil.copytree(ROOT / "vmkit", root / "vmkit", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_code_keeps_the_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") == 2


def test_the_code_has_no_import_cycles():
    assert cycles(ROOT) == []


@contextmanager
def planted(path: Path, line: str) -> Iterator[None]:
    """``line`` appended to the module at ``path`` for the body, then taken out again."""
    clean = path.read_text()
    path.write_text(f"{clean}\n{line}\n")
    try:
        yield
    finally:
        path.write_text(clean)


def test_a_lower_floor_importing_a_higher_one_breaks_the_contract(copy: Path):
    with planted(copy / "vmkit/core/records.py", "from vmkit.migration import runner  # planted"):
        done = lint_imports(copy)
    assert done.returncode != 0
    assert "vmkit.core is not allowed to import vmkit.migration" in done.stdout
    assert "vmkit.core.records -> vmkit.migration.runner" in done.stdout


def test_one_database_importing_another_breaks_the_contract(copy: Path):
    with planted(copy / "vmkit/connectors/qdrant/write.py", "from vmkit.connectors.pinecone import rates  # planted"):
        done = lint_imports(copy)
    assert done.returncode != 0 and "vmkit.connectors.qdrant.write -> vmkit.connectors.pinecone.rates" in done.stdout


def test_a_cycle_inside_one_package_is_found(copy: Path):
    with planted(copy / "vmkit/planning/plan.py", "from vmkit.planning import dryrun  # planted: dryrun imports plan"):
        found = cycles(copy)
    assert any({"vmkit.planning.plan", "vmkit.planning.dryrun"} <= set(group) for group in found), found
