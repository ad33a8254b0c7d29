"""The migration panel as users meet it: JupyterLab in headless Chromium (Playwright).

02_migrate runs interactively on a small embedded source (Qdrant local directory) into a
memory target slowed to ``latency_ms`` per call, so that clicks land while it runs. After each
click the panel's text and the state store must agree. Screenshots go to the artefacts folder.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
from engines.jupyterlab import LabServer, artifacts_dir, command, open_notebook

from vmkit.notebook.notebooks import notebook_path
from vmkit.state.store import StateStore

RECORDS, DIM, BATCH = 2000, 16, 20


def prepare(server: LabServer, name: str, **params: Any) -> str:
    """A copy of a project notebook in the lab's root, its parameters set as a user would."""
    nb = nbformat.read(notebook_path(name), as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    code = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]}))
    dest = f"{params.get('migration_id', 'nb')}-{notebook_path(name).name}"
    nbformat.write(nb, server.root / dest)
    return dest


def common(server: LabServer, mid: str) -> dict[str, Any]:
    return {"migration_id": mid, "records": RECORDS, "dim": DIM, "batch_size": BATCH,
            "sample_rate": 0.2, "state_path": str(server.root / "state.db"),
            "data_dir": str(server.root / "data"), "runs_dir": str(server.root / "runs"),
            "target": f"memory://{mid}?latency_ms=60"}


def panel(page: Any) -> Any:
    return page.locator(".vmkit-panel").last


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"lab-{name}.png"), full_page=False)


def store_row(server: LabServer, mid: str) -> Any:
    store = StateStore(server.root / "state.db")
    try:
        return store.get(mid)
    finally:
        store.close()


def test_panel_buttons_in_jupyterlab(lab_server: LabServer, lab_page: Any) -> None:
    page, mid = lab_page, "labrun"
    name = prepare(lab_server, "02", **common(lab_server, mid))
    open_notebook(page, lab_server, name)
    command(page, "notebook:run-all-cells")
    box = panel(page)
    box.wait_for()
    shot(page, "01-running")
    box.get_by_role("button", name="Pause").click()
    box.get_by_text(re.compile("panel: paused")).wait_for()
    shot(page, "02-paused")
    row = store_row(lab_server, mid)
    assert row.state == "in_progress" and row.batches >= 1
