"""The notebooks, executed headless through papermill on the embedded default (Qdrant local
directories), at a small size. One module-scoped run of 01 -> 02 -> 03 feeds most tests; the
kill test runs 02 on its own migration id."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from vmkit.notebook.notebooks import NOTEBOOKS, notebook_path, run_notebook

RECORDS, DIM = 2000, 32
CANARY = "canary-7f3a9c1e-do-not-leak"
PARAMS_02 = {"source", "target", "migration_id", "batch_size", "sample_rate", "min_similarity",
             "max_batches", "interactive", "repair", "state_path", "records", "dim"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nb")
    return {"root": root, "out": root / "out", "state": root / "state.db", "data": root / "data",
            "runs": root / "runs"}


def common(work: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {"records": RECORDS, "dim": DIM, "data_dir": str(work["data"]), "runs_dir": str(work["runs"]),
            "state_path": str(work["state"]), **extra}


@pytest.fixture(scope="module")
def flow(work: dict[str, Path]) -> dict[str, Path]:
    """01, 02 and 03 for migration "flow", with a canary secret in the kernel's environment."""
    old = os.environ.get("QDRANT_API_KEY")
    os.environ["QDRANT_API_KEY"] = CANARY
    try:
        p = common(work)
        out = {
            "01": run_notebook("01", "flow", {k: p[k] for k in ("records", "dim", "data_dir", "runs_dir")},
                               out_dir=work["out"]),
            "02": run_notebook("02", "flow", {**p, "batch_size": 250, "sample_rate": 0.5},
                               out_dir=work["out"]),
            "03": run_notebook("03", "flow", {"state_path": p["state_path"], "runs_dir": p["runs_dir"],
                                              "sample": 300}, out_dir=work["out"]),
        }
    finally:
        if old is None:
            os.environ.pop("QDRANT_API_KEY", None)
        else:
            os.environ["QDRANT_API_KEY"] = old
    return out


def outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o["output_type"] != "error", f"{path.name}: {o.get('ename')}: {o.get('evalue')}"
            data = o.get("data", {})
            parts.append(o.get("text", "") + str(data.get("text/plain", "")) + str(data.get("text/html", "")))
    return "\n".join(parts)


def query(state: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_committed_notebooks_are_clean_and_parameterized() -> None:
    import papermill as pm

    for name in NOTEBOOKS:
        path = notebook_path(name)
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3" and nb.metadata["language_info"]["name"] == "python"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
    params = pm.inspect_notebook(str(notebook_path("02")))
    assert PARAMS_02 <= set(params)
    assert params["interactive"]["default"] == "True" and params["interactive"]["inferred_type_name"] == "bool"


def test_every_notebook_runs_headless_and_migrates(flow: dict[str, Path], work: dict[str, Path]) -> None:
    for path in flow.values():
        assert path.parent == work["out"] / "flow" and path.exists()
        outputs_text(path)  # asserts no cell failed
    assert "verification PASSED" in outputs_text(flow["02"])
    (state, verification, read, written), = query(
        work["state"], "SELECT state, verification, records_read, records_written FROM migrations WHERE id='flow'")
    assert (state, verification, read, written) == ("completed", "passed", RECORDS, RECORDS)
    assert "records checked" in outputs_text(flow["01"])  # the dry run ran
    for step in ("profiling a sample of the source", "planning", "dry run on 2,000 records"):
        assert f"{step}: done in " in outputs_text(flow["01"])  # long steps say they are alive, then how long
    assert "planning the migration: done in " in outputs_text(flow["02"])


def test_report_files_show_data(flow: dict[str, Path], work: dict[str, Path]) -> None:
    from matplotlib.image import imread

    report_dir = work["runs"] / "flow" / "report"
    pngs = sorted(report_dir.glob("*.png"))
    assert {p.stem for p in pngs} == {"cosine_hist", "min_cosine", "throughput", "errors_rejections", "completeness"}
    for png in pngs:
        pixels = imread(png)
        assert png.stat().st_size > 5000 and pixels.ndim == 3 and float(pixels[..., :3].var()) > 0, png.name
    summary = (report_dir / "summary.txt").read_text()
    assert "migration flow: completed" in summary and "re-read sample: 300 records" in summary
    shown = [c for c in nbformat.read(flow["03"], as_version=4).cells if c.source.startswith("rep.show")]
    assert "image/png" in shown[0].outputs[0]["data"]
    page = (work["runs"] / "flow" / "report.html").read_text()  # the one file to share
    assert page.count("src='data:image/png;base64,") >= 4 and "migration <code>flow</code>" in page
    live = [c for c in nbformat.read(flow["02"], as_version=4).cells if c.source.startswith("live_figure")]
    assert "image/png" in live[0].outputs[0]["data"]  # headless: the panel's figures in the notebook


def test_canary_secret_appears_nowhere(flow: dict[str, Path], work: dict[str, Path]) -> None:
    assert "'QDRANT_API_KEY': 'set'" in outputs_text(flow["02"])  # the kernel did see the secret
    leaked = [p for p in work["root"].rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaked == []


def _kernel_pids(papermill_pid: int) -> list[int]:
    """Direct children of papermill (its kernel runs in a session of its own)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == papermill_pid:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the kernel through /proc")
def test_sigkilled_run_resumes_without_redoing_batches(flow: dict[str, Path], work: dict[str, Path]) -> None:
    batch = 20
    p = common(work, batch_size=batch, sample_rate=0.2, migration_id="killed", interactive=False)
    out = work["out"] / "killed"
    out.mkdir(parents=True)
    args = [sys.executable, "-m", "papermill", str(notebook_path("02")), str(out / "02_migrate.ipynb")]
    for k, v in p.items():
        args += ["-p", k, str(v)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    row: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if work["state"].exists():
                row = query(work["state"], "SELECT batches, state FROM migrations WHERE id='killed'")
                if row and row[0][0] >= 1:
                    break
            time.sleep(0.01)
    finally:
        kernels = _kernel_pids(proc.pid)
        for pgid in [proc.pid, *kernels]:  # papermill's group and the kernel's own session
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    assert row and row[0][0] >= 1, "the run committed no batch before the deadline"
    assert kernels, "no kernel process found to kill"
    def ledger() -> list[tuple[Any, ...]]:
        return query(work["state"], "SELECT seq, cursor_before, cursor_after, read, committed_at"
                                    " FROM batches WHERE migration_id='killed' ORDER BY seq")

    before = ledger()
    (state_at_kill,), = query(work["state"], "SELECT state FROM migrations WHERE id='killed'")
    total = math.ceil(RECORDS / batch)
    assert state_at_kill == "in_progress" and 1 <= len(before) < total

    run_notebook("02", "killed", {k: v for k, v in p.items() if k != "migration_id"}, out_dir=work["out"])
    after = ledger()
    assert [r[0] for r in after] == list(range(1, total + 1))  # seqs continue, no gaps, no repeats
    assert after[: len(before)] == before  # the batches done before the kill were not redone
    assert sum(r[3] for r in after) == RECORDS
    (state, verification), = query(work["state"], "SELECT state, verification FROM migrations WHERE id='killed'")
    assert (state, verification) == ("completed", "passed")
    assert "lease taken over" in str(query(work["state"], "SELECT event FROM events WHERE migration_id='killed'"))


def test_panel_runs_in_a_real_kernel(tmp_path: Path) -> None:
    """The interactive path inside ipykernel: the loop in the worker thread, the widget view
    plus its text form, and the worker's lines in the Output widget's synced state."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    setup = f"""import numpy as np
from vmkit import Migration, TargetSpec, connect
from vmkit.connectors.memory import faults_for
from vmkit.core.records import RecordBatch
from vmkit.notebook.widgets import MigrationPanel
src = connect("memory://src")
src.create(TargetSpec("src", 8, "cosine"))
src.upsert(RecordBatch(ids=[f"r{{i}}" for i in range(1000)], metadata=[{{}}] * 1000,
                       vectors=np.random.default_rng(1).standard_normal((1000, 8))))
faults_for("dst").latency_s = 0.005
m = Migration.create("memory://src", "memory://dst", migration_id="k", state={str(tmp_path / 's.db')!r},
                     batch_size=50)"""
    cells = [setup, "panel = MigrationPanel(m)\npanel.start()\npanel",
             "assert panel.controller.join(60)\npanel.refresh()\nprint(panel)"]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    shown = nb.cells[1].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in shown
    assert shown["text/plain"].split("]")[0] in ("[connecting", "[copying", "[validating")  # the phase
    assert nb.cells[2].outputs[0]["text"].startswith("[completed] 100%")
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    logged = [o["text"] for w in state.values() if w["model_name"] == "OutputModel"
              for o in w["state"].get("outputs", [])]
    assert "k: completed\n" in logged


def test_02_offers_repair_after_a_failed_verification(flow: dict[str, Path], work: dict[str, Path]) -> None:
    """A record lost by the target after it was copied: the run's full verification fails and
    the headless notebook says so; run again with ``repair True``, it copies the record again,
    verifies and completes."""
    from vmkit.connectors import connect
    from vmkit.notebook.notebooks import demo_target

    batch = 500
    p = common(work, batch_size=batch, sample_rate=0.0, interactive=False)
    run_notebook("02", "repairme", {**p, "max_batches": RECORDS // batch - 1}, out_dir=work["out"])
    with connect(demo_target(work["runs"] / "repairme")) as target:
        lost = target.scan(None, 1)[0]
        target.delete(lost.ids, lost.namespace)
    with pytest.raises(Exception, match="verification failed"):
        run_notebook("02", "repairme", p, out_dir=work["out"])
    run_notebook("02", "repairme", {**p, "repair": True}, out_dir=work["out"])
    (state, verification), = query(work["state"], "SELECT state, verification FROM migrations WHERE id='repairme'")
    assert (state, verification) == ("completed", "passed")
    events = str(query(work["state"], "SELECT event, detail FROM events WHERE migration_id='repairme'"))
    assert "repaired" in events and "1 copied" in events
