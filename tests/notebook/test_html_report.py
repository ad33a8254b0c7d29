"""The one-file HTML report (``vmkit report --html``) and one-sentence cell errors."""

from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.image import imread
from typer.testing import CliRunner

from vmkit import Migration, TargetSpec, connect
from vmkit.cli import app
from vmkit.core.errors import ConfigError, TransientError
from vmkit.core.records import RecordBatch
from vmkit.notebook.cell_errors import one_sentence

N, BATCH = 600, 50
FAST = {"retry_initial_s": 0.001, "retry_cap_s": 0.01}
CANARY = "canary-html-3c9d2e-must-not-leak"


def migrate(tmp_path, target: str) -> Migration:
    src = connect("memory://src")
    src.create(TargetSpec("src", 8, "cosine"))
    rng = np.random.default_rng(5)
    src.upsert(RecordBatch(ids=[f"r{i}" for i in range(N)], vectors=rng.standard_normal((N, 8)),
                           metadata=[{"i": i, "bad": i % 250 == 7} for i in range(N)]))
    m = Migration.create("memory://src", target, migration_id="h", state=tmp_path / "s.db",
                         batch_size=BATCH, sample_rate=0.5, **FAST)
    assert m.run().state == "completed"
    return m


def images(page: str) -> list[np.ndarray]:
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    return [imread(io.BytesIO(base64.b64decode(u)), format="png") for u in uris]


def test_cli_writes_one_self_contained_file_without_secrets(tmp_path, monkeypatch) -> None:
    m = migrate(tmp_path, "memory://dst?invalid_field=bad&fail_rate=0.2&seed=4")
    # A secret that reached an error message (a careless server echoing a header, say).
    m.store.record_error("h", None, "terminal", f"auth refused for key {CANARY}")
    monkeypatch.setenv("PINECONE_API_KEY", CANARY)
    out = tmp_path / "share" / "report.html"
    result = CliRunner().invoke(app, ["report", "--id", "h", "--html", str(out), "--state", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert CANARY not in page and "[PINECONE_API_KEY hidden]" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # nothing fetched
    pics = images(page)
    assert len(pics) == 5  # cosine, min cosine, throughput, errors and rejections, completeness
    assert all(p.ndim == 3 and p.shape[0] > 100 and float(p[..., :3].var()) > 0 for p in pics)
    for text in ("Counts", "Sampled validation", "Full verification", "passed", "Rejections by reason",
                 "refused by target", "is not allowed", "Errors (latest 20)", "Plan"):
        assert text in page, text


def test_empty_tables_and_figures_are_left_out(tmp_path) -> None:
    m = migrate(tmp_path, "memory://dst")
    from vmkit.notebook.report import report

    page = report(m, sample=0).to_html()
    assert "no record rejected" in page and "no errors" in page
    assert "alt='errors_rejections'" not in page and "no data for: errors_rejections" in page
    assert len(images(page)) == 4


def test_unknown_id_is_one_line(tmp_path) -> None:
    result = CliRunner().invoke(app, ["report", "--id", "nope", "--state", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "no migration with id 'nope'" in result.output


def test_cell_error_is_one_sentence_with_the_fix() -> None:
    text = one_sentence(ConfigError("unknown scheme 'nosuch' in 'nosuch://x'"))
    assert text == ("ConfigError: unknown scheme 'nosuch' in 'nosuch://x'\n"
                    "fix: check the URI and the environment variables it names, then run the cell again")
    long = one_sentence(TransientError("\n".join(f"line {i}" for i in range(30))))
    assert len(long.splitlines()) == 8 + 2 and "22 more lines in the log" in long


def test_a_vmkit_error_in_a_real_kernel_cell_is_short_and_the_cell_fails() -> None:
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    cells = ["from vmkit.notebook.cell_errors import friendly_errors\nassert friendly_errors()",
             "import vmkit\nvmkit.connect('nosuch://x')", "import sys; print(type(sys.last_value).__name__)",
             "1 / 0",
             # the case: a source nobody answers at, through tenacity and the SDK
             "import tempfile\nvmkit.Migration.create('qdrant://127.0.0.1:1/docs', 'memory://t', "
             "state=tempfile.mkdtemp() + '/s.db', retry_attempts=2, retry_initial_s=0.01)"]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    err = nb.cells[1].outputs[-1]
    assert err["output_type"] == "error" and err["ename"] == "ConfigError"
    shown = "\n".join(err["traceback"])
    assert len(shown.splitlines()) <= 4 and "fix:" in shown and "Traceback" not in shown
    assert nb.cells[2].outputs[0]["text"].strip() == "ConfigError"  # %tb still has it
    other = nb.cells[3].outputs[-1]  # anything else keeps IPython's own traceback
    assert other["ename"] == "ZeroDivisionError" and len(other["traceback"]) > 1
    refused = next(o for o in nb.cells[4].outputs if o["output_type"] == "error")
    assert refused["ename"] == "TransientError" and "Connection refused" in refused["evalue"]
    assert len("\n".join(refused["traceback"]).splitlines()) <= 4 and "reachable" in refused["traceback"][0]


def test_live_figure_is_a_figure_with_three_panels(tmp_path) -> None:
    from vmkit.notebook.live import figure_png, live_figure

    m = migrate(tmp_path, "memory://dst?invalid_field=bad")
    fig = live_figure(m)
    assert [ax.get_title() for ax in fig.axes] == ["throughput per batch", "cosine similarity, source vs target",
                                                  "rejections by reason"]
    assert figure_png(fig)[:4] == b"\x89PNG"


def test_plan_and_status_show_as_tables(tmp_path) -> None:
    m = migrate(tmp_path, "memory://dst?ids=uuid&invalid_field=bad")
    plan = m.plan._repr_html_()
    assert "<table" in plan and "id policy" in plan and "field map" in plan
    assert "the target takes uuid ids" in plan and "_vmkit_source_id" in plan
    status = m.status()._repr_html_()
    assert "<table" in status and "full verification" in status and "rejected: refused by target" in status
    assert "errors" not in status  # no errors: no row for them


def test_views_say_when_empty_and_describe_reads_as_a_table() -> None:
    import pandas as pd

    from vmkit.connectors.base import CollectionInfo
    from vmkit.notebook import views

    assert "no record rejected" in views.table(pd.DataFrame(columns=["reason"]), "no record rejected")._repr_html_()
    df = pd.DataFrame({"reason": ["x"]})
    assert views.table(df, "none") is df
    info = CollectionInfo("docs", 768, "cosine", 20_000, namespaces={"": 5, "b": 15_000})
    page = views.describe(info)._repr_html_()
    assert "<table" in page and "20,000" in page and "dim 768, cosine" in page and "(default)" in page
    assert repr(views.describe(None)) == "the collection does not exist"
