"""The migration panel as users meet it: JupyterLab in headless Chromium (Playwright).

02_migrate runs interactively on a small embedded source (a Qdrant local directory) into a
memory target slowed to ``latency_ms`` per call, so that clicks land while it runs. After each
click the panel's phase and the state store must agree. Screenshots go to the artefacts folder
(``$VMKIT_ARTIFACTS``, else tests/artifacts/).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import nbformat
from engines.jupyterlab import CANARY, LabServer, artifacts_dir, command, open_notebook, run_cell

from vmkit.migration.status import Status, read_status
from vmkit.notebook.notebooks import notebook_path
from vmkit.state.store import StateStore

RECORDS, DIM, BATCH = 3000, 16, 20
COPYING = re.compile("^(copying|validating)$")


# A fresh kernel imports vmkit, numpy and matplotlib, builds the demo source and plans before the
# panel shows: on a machine busy with the rest of the suite that took over a minute.
FIRST_PANEL_MS = 240_000


def prepare(server: LabServer, name: str, **params: Any) -> str:
    """A copy of a project notebook in the lab's root, its parameters set as a user would
    (papermill's way: a cell after the ``parameters`` cell)."""
    nb = nbformat.read(notebook_path(name), as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    code = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]}))
    dest = f"{params['migration_id']}-{notebook_path(name).name}"
    nbformat.write(nb, server.root / dest)
    return dest


def params(server: LabServer, mid: str) -> dict[str, Any]:
    return {"migration_id": mid, "records": RECORDS, "dim": DIM, "batch_size": BATCH,
            "sample_rate": 0.2, "state_path": str(server.root / "state.db"),
            "data_dir": str(server.root / "data"), "runs_dir": str(server.root / "runs"),
            "target": f"memory://{mid}?latency_ms=60"}


def code_cell_index(name: str, server: LabServer, starts: str) -> int:
    nb = nbformat.read(server.root / name, as_version=4)
    return next(i for i, c in enumerate(nb.cells) if c.source.startswith(starts))


def status(server: LabServer, mid: str) -> Status:
    store = StateStore(server.root / "state.db")
    try:
        return read_status(store, mid)
    finally:
        store.close()


def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Panel:
    """The last migration panel on the page, read and clicked as a user would."""

    def __init__(self, page: Any) -> None:
        from playwright.sync_api import expect

        self.page, self.expect = page, expect
        self.box = page.locator(".vmkit-panel").last

    def button(self, name: str) -> Any:
        return self.box.locator("button", has_text=re.compile(f"^{name}$"))

    def click(self, name: str) -> None:
        self.expect(self.button(name)).to_be_enabled()
        self.button(name).click()

    def phase(self, want: str | re.Pattern[str], timeout: float = 60_000) -> None:
        self.expect(self.box.locator(".vmkit-phase")).to_have_attribute("data-phase", want, timeout=timeout)

    def text(self) -> str:
        return str(self.box.inner_text())

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(artifacts_dir() / f"lab-{name}.png"))


def test_panel_buttons_in_jupyterlab_agree_with_the_state_store_and_the_report_opens(lab_server: LabServer, lab_page: Any) -> None:
    page, mid = lab_page, "labrun"
    name = prepare(lab_server, "02", **params(lab_server, mid))
    open_notebook(page, lab_server, name)
    command(page, "notebook:run-all-cells")
    panel = Panel(page)
    panel.phase(COPYING, timeout=FIRST_PANEL_MS)
    # Run All reached the status cell while the run goes on: it says so, not a stale status.
    page.get_by_text(f"{mid} is still running").wait_for()
    panel.shot("01-copying")

    # The migration cell run again: the live panel of the same run, not a LeaseHeld failure.
    run_cell(page, code_cell_index(name, lab_server, "run = run_migration"))
    panel = Panel(page)
    panel.phase(COPYING)
    panel.expect(panel.box).to_contain_text("the cell ran again")
    assert "LeaseHeld" not in page.content()

    panel.click("Pause")
    panel.phase("paused")
    held = status(lab_server, mid)
    assert held.state == "in_progress" and 1 <= held.batches < RECORDS // BATCH
    assert held.running is not None  # the kernel still holds the run (connections open)
    assert "rec/s" not in panel.text() and "ETA" not in panel.text()
    panel.expect(panel.button("Resume")).to_be_enabled()
    panel.expect(panel.button("Pause")).to_be_disabled()
    panel.shot("02-paused")
    assert status(lab_server, mid).batches == held.batches  # nothing copied while paused

    panel.click("Resume")
    panel.phase(COPYING)
    until(lambda: status(lab_server, mid).batches > held.batches, "batches after Resume")
    panel.shot("03-resumed")

    panel.click("Stop")
    panel.phase("stopped")
    stopped = status(lab_server, mid)
    assert stopped.state == "in_progress" and stopped.running is None and stopped.batches < RECORDS // BATCH
    panel.expect(panel.button("Start")).to_be_enabled()
    panel.shot("04-stopped")

    panel.click("Start")
    panel.phase("completed", timeout=120_000)
    done = status(lab_server, mid)
    assert (done.state, done.verification, done.records_read) == ("completed", "passed", RECORDS)
    ledger = StateStore(lab_server.root / "state.db").query(
        "SELECT seq FROM batches WHERE migration_id=? ORDER BY seq", mid)
    assert [r[0] for r in ledger] == list(range(1, RECORDS // BATCH + 1))  # no pause or stop as a batch
    panel.expect(panel.box).to_contain_text("created target")  # the run's own log, in the panel
    figure = panel.box.locator("img")
    panel.expect(figure).to_be_visible()
    assert figure.evaluate("img => img.naturalWidth") > 0
    panel.shot("05-completed")
    command(page, "docmanager:save")  # the executed notebook, checked for secrets below
    until(lambda: "'PINECONE_API_KEY': 'set'" in (lab_server.root / name).read_text(), "the saved notebook")
    html_report_opens_in_the_browser_with_figures_and_no_secret(lab_server, page, mid)


def test_rollback_from_the_panel(lab_server: LabServer, lab_page: Any) -> None:
    page, mid = lab_page, "labroll"
    name = prepare(lab_server, "02", **params(lab_server, mid))
    open_notebook(page, lab_server, name)
    command(page, "notebook:run-all-cells")
    panel = Panel(page)
    panel.phase(COPYING, timeout=FIRST_PANEL_MS)
    panel.box.get_by_text("drop target on rollback").click()
    panel.click("Rollback")
    panel.phase("rolled_back")
    rolled = status(lab_server, mid)
    assert rolled.state == "rolled_back" and rolled.running is None and rolled.batches < RECORDS // BATCH
    assert "target dropped" in str(rolled.events)
    for name in ("Start", "Pause", "Resume", "Stop", "Rollback"):
        panel.expect(panel.button(name)).to_be_disabled()
    panel.shot("06-rolled-back")


def html_report_opens_in_the_browser_with_figures_and_no_secret(lab_server: LabServer, page: Any, mid: str) -> None:
    """03_validation_report run in the lab on a completed migration: the one HTML file it
    writes opens on its own (file://), its figures decode, no secret is in it nor in the
    notebooks (the kernels' environment holds a canary secret)."""
    assert status(lab_server, mid).state == "completed"
    p = params(lab_server, mid)
    name = prepare(lab_server, "03", migration_id=mid, state_path=p["state_path"], runs_dir=p["runs_dir"],
                   sample=0)  # the memory target lived in 02's kernel: the state store alone
    open_notebook(page, lab_server, name)
    command(page, "notebook:run-all-cells")
    out = lab_server.root / "runs" / mid / "report.html"
    until(out.exists, "report.html", timeout=120)
    assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                            ).filter(has_text="Traceback").count()
    command(page, "docmanager:save")
    page.goto(out.as_uri())
    page.get_by_role("heading", name=re.compile(f"vmkit migration {mid}")).wait_for()
    images = page.locator("img")
    assert images.count() >= 4  # cosine, min cosine, throughput, completeness (no errors: none drawn)
    for i in range(images.count()):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") > 0
        assert images.nth(i).get_attribute("src").startswith("data:image/png;base64,")
    body = page.locator("body").inner_text()
    assert "completed" in body and "passed" in body and "no record rejected" in body
    page.screenshot(path=str(artifacts_dir() / "lab-07-html-report.png"), full_page=True)
    leaked = [f.name for f in lab_server.root.rglob("*") if f.is_file() and f.suffix in (".html", ".ipynb")
              and CANARY in f.read_text(errors="replace")]
    assert leaked == []
