"""A real JupyterLab server and a headless Chromium driven by Playwright, for the browser tests.

Facts checked on this machine (/work/shared/reference/vector-databases.md, "JupyterLab in a
browser"): Playwright's own browser download needs the internet, so the system Chromium is used
(``apt-get install chromium`` on Debian) with ``--no-sandbox`` (root in a container); JupyterLab
run as root needs ``--allow-root``; an empty ``IdentityProvider.token`` turns the token off.
The news toast ("get notified about official Jupyter news?") is switched off through user
settings in a temporary settings directory (and dismissed if it shows anyway).

Fixtures:
- ``lab_server`` (module): ``LabServer`` with ``url``, ``root`` (a temp folder served as the
  lab's root), ``env`` (the environment its kernels inherit) and ``log``. The process group is
  killed at the end.
- ``lab_page`` (module): a Playwright ``Page`` in headless Chromium. Skipped, with the install
  command, when Playwright, JupyterLab or Chromium is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = ("apt-get install -y chromium && pip install 'vmkit[lab]' playwright"
           " (or `make test` as root)")
CANARY = "canary-5b1e0d77-browser-must-not-leak"  # a secret in the kernels' environment


def chromium_path() -> str | None:
    """The system Chromium (``$VMKIT_CHROMIUM`` overrides)."""
    for name in (os.environ.get("VMKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: ``$VMKIT_ARTIFACTS``, else tests/artifacts (gitignored)."""
    out = Path(os.environ.get("VMKIT_ARTIFACTS") or REPO / "tests" / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass(frozen=True)
class LabServer:
    url: str
    root: Path
    env: dict[str, str]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(where: Path) -> None:
    """No news toast, no update check: user settings of the notification plugin."""
    plugin = where / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True)
    (plugin / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _require_browser() -> str:
    """The Chromium to drive; skips (with the install command) when a part is missing."""
    pytest.importorskip("jupyterlab", reason=f"JupyterLab is not installed: {INSTALL}")
    pytest.importorskip("playwright.sync_api", reason=f"Playwright is not installed: {INSTALL}")
    exe = chromium_path()
    if exe is None:
        pytest.skip(f"no Chromium found: {INSTALL}")
    return exe


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    _require_browser()  # before starting a server that nothing could drive
    base = tmp_path_factory.mktemp("lab")
    root, settings = base / "root", base / "settings"
    root.mkdir()
    _settings(settings)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(base / "ws"),
           "PINECONE_API_KEY": CANARY, "QDRANT_API_KEY": CANARY, "MPLBACKEND": "Agg"}
    log = base / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
           "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
           "--ServerApp.disable_check_xsrf=True"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_up(url, proc, log)
        yield LabServer(url, root, env, log)
    finally:
        # The server's group holds it; kernels run in sessions of their own: shutting the
        # server down politely first stops them, then the group is killed.
        with contextlib.suppress(OSError):
            req = urllib.request.Request(f"{url}/api/shutdown", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def lab_page(lab_server: LabServer) -> Iterator[Any]:
    exe = _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


# -- driving JupyterLab -------------------------------------------------------------------------
def open_notebook(page: Any, server: LabServer, name: str) -> None:
    """Open ``name`` (in the lab's root) and wait for its kernel to be idle."""
    page.goto(f"{server.url}/lab/tree/{name}?reset")  # ?reset: not the tabs of an earlier test
    page.wait_for_function(
        "(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path === name && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }", arg=name)
    dismiss_toasts(page)


def dismiss_toasts(page: Any) -> None:
    for label in ("No", "Dismiss"):
        button = page.locator(".Toastify__toast button", has_text=label)
        if button.count():
            button.first.click()


def command(page: Any, name: str, args: dict[str, Any] | None = None) -> None:
    """Run a JupyterLab command (``notebook:run-all-cells`` ...) as its menu item would."""
    page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])


def run_cell(page: Any, index: int) -> None:
    """Select code cell ``index`` of the current notebook and run it (Shift+Enter's command)."""
    page.evaluate("(i) => { const nb = window.jupyterapp.shell.currentWidget.content;"
                  " nb.activeCellIndex = i; }", index)
    command(page, "notebook:run-cell")


def kernel_idle(page: Any) -> bool:
    return bool(page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext"
                              ".session.kernel.status === 'idle'"))
