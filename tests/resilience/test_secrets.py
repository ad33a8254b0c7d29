"""Secrets: canary API keys in the environment never reach logs, terminal output, the state
file (raw bytes, -wal and -shm included), reports or exception messages; URIs that carry
credentials are refused without echoing them, through the CLI as well as the library.

The CLI runs in real processes with ``--log-file`` (DEBUG) and ``--log-level DEBUG``; a server
URI points at a small local HTTP server that records the ``api-key`` header it receives, so
the test also proves the key was really in play.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmkit import Migration
from vmkit.core.errors import SecretInURI

pytestmark = pytest.mark.filterwarnings("ignore:Local mode is not recommended:UserWarning",
                                        "ignore:Api key is used with an insecure connection")

CANARIES = {
    "QDRANT_API_KEY": "qdr-canary-5f0c9a1e7b",
    "PINECONE_API_KEY": "pcsk_canary-3d82b6f4aa",
    "WEAVIATE_API_KEY": "wv-canary-c19e04d7f2",
}
SOURCE = "synthetic://s?n=600&dim=8&seed=4&metric=dot"


def forms(secret: str) -> list[bytes]:
    """The secret as it could be written: plain, UTF-16, base64 and hex."""
    raw = secret.encode()
    return [raw, secret.encode("utf-16-le"), base64.b64encode(raw), raw.hex().encode()]


def assert_clean(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for name, secret in CANARIES.items():
        for form in forms(secret):
            assert form not in blob, f"{name} found in {where}"


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and "target" not in p.parts}


@pytest.fixture
def work():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="vmkit-secrets-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_cli(args: list[str], work: Path, log: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
    state = [] if args[0] == "plan" else ["--state", str(work / "state.db")]
    cmd = [sys.executable, "-m", "vmkit", "--log-level", "DEBUG", "--log-file", str(work / log),
           *args, *state]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **CANARIES, **(env or {})})


def test_canary_keys_never_written_anywhere(work):
    target = f"qdrant://{work}/target?collection=c"
    start = ["migrate", "start", "--source", SOURCE, "--target", target, "--id", "sec",
             "--batch-size", "100", "--sample-rate", "1.0"]
    outputs = []
    killed = run_cli(start, work, "killed.log", {"VMKIT_CRASH_AT": "after_ack:3"})
    assert killed.returncode == -9
    wal = work / "state.db-wal"
    assert wal.exists() and wal.stat().st_size > 0  # left by the kill: scanned below as is
    assert_clean("state.db-wal after a kill", wal.read_bytes())
    outputs.append(killed.stdout + killed.stderr)
    done = run_cli(["migrate", "resume", "--id", "sec"], work, "resume.log")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "full verification: passed" in done.stdout
    outputs.append(done.stdout + done.stderr)
    for args in (["status", "--id", "sec"], ["validate", "--id", "sec", "--full"],
                 ["rejections", "--id", "sec"], ["status"],
                 ["plan", "--source", SOURCE, "--target", target]):
        r = run_cli(args, work, "read.log")
        assert r.returncode == 0, r.stdout + r.stderr
        outputs.append(r.stdout + r.stderr)

    from vmkit.notebook.report import report

    m = Migration.open("sec", work / "state.db")
    rep = report(m, sample=50)
    saved = rep.save(work / "report")
    outputs += [str(rep), repr(rep), rep._repr_html_(), str(m.status()), m._repr_html_()]
    m.store.close()

    logs = (work / "killed.log").read_text() + (work / "resume.log").read_text()
    assert "batch 3 acknowledged" in logs and "DEBUG" in logs  # the logs are really verbose
    assert len(saved) >= 3 and (work / "report" / "summary.txt").exists()
    for i, text in enumerate(outputs):
        assert_clean(f"output {i}", text)
    for name, data in files_under(work).items():  # state.db(-wal, -shm), logs, report files
        assert_clean(name, data)


# -- a server that receives the key ------------------------------------------------------------

class KeyRecordingServer:
    """Answers every request with 401 (or 403); records the api-key header it was sent.
    ``echo``: the error body repeats the key it received, as some proxies and debug builds do."""

    def __init__(self, echo: bool = False) -> None:
        self.keys: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                key = self.headers.get("api-key") or ""
                outer.keys.append(key)
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                error = "Invalid API key" + (f": {key}" if echo else "")
                body = json.dumps({"status": {"error": error}, "time": 0.0}).encode()
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "KeyRecordingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _refused_by_server(work: Path, echo: bool) -> tuple[KeyRecordingServer, subprocess.CompletedProcess]:
    with KeyRecordingServer(echo=echo) as server:
        r = run_cli(["migrate", "start", "--source", f"qdrant://127.0.0.1:{server.port}/docs",
                     "--target", f"qdrant://{work}/target?collection=c", "--id", "srv",
                     "--no-progress"], work, "server.log")
    return server, r


def test_a_key_the_server_refuses_is_never_repeated(work):
    server, r = _refused_by_server(work, echo=False)
    assert CANARIES["QDRANT_API_KEY"] in server.keys  # the key was really sent
    assert r.returncode == 2 and "error: " in r.stderr and "401" in r.stderr
    assert_clean("stdout/stderr", r.stdout + r.stderr)
    for name, data in files_under(work).items():
        assert_clean(name, data)


def test_a_refused_key_is_one_error_line(work):
    _, r = _refused_by_server(work, echo=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def test_a_key_echoed_by_the_server_is_scrubbed(work):
    server, r = _refused_by_server(work, echo=True)
    assert CANARIES["QDRANT_API_KEY"] in server.keys
    assert r.returncode == 2
    assert_clean("stdout/stderr", r.stdout + r.stderr)
    for name, data in files_under(work).items():
        assert_clean(name, data)


# -- credentials inside URIs --------------------------------------------------------------------

SECRET = CANARIES["PINECONE_API_KEY"]
URIS_WITH_CREDENTIALS = {
    "qdrant-userinfo": f"qdrant://admin:{SECRET}@localhost:6333/docs",
    "qdrant-password-only": f"qdrant://:{SECRET}@localhost:6333/docs",
    "qdrant-api_key": f"qdrant://localhost:6333/docs?api_key={SECRET}",
    "qdrant-API_KEY": f"qdrant://localhost:6333/docs?API_KEY={SECRET}",
    "pinecone-apikey": f"pinecone://idx?apikey={SECRET}",
    "pinecone-token": f"pinecone://idx?namespace=a&token={SECRET}",
    "weaviate-password": f"weaviate://localhost:8080/Docs?password={SECRET}",
    "weaviate-userinfo": f"weaviate://user:{SECRET}@localhost:8080/Docs",
    "memory-secret": f"memory://x?secret={SECRET}",
}


@pytest.mark.parametrize("where", ["source", "target", "plan"])
@pytest.mark.parametrize("name", list(URIS_WITH_CREDENTIALS))
def test_uri_with_credentials_is_refused_without_echo(work, name, where):
    uri, other = URIS_WITH_CREDENTIALS[name], f"qdrant://{work}/other?collection=c"
    if where == "plan":
        args = ["plan", "--source", other, "--target", uri]
    else:
        src, dst = (uri, other) if where == "source" else (SOURCE, uri)
        args = ["migrate", "start", "--source", src, "--target", dst, "--id", "cred", "--no-progress"]
    r = _inprocess_cli(args, work)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "carries credentials" in lines[0], r.output
    assert_clean("output", r.output)
    for fname, data in files_under(work).items():
        assert_clean(fname, data)


@pytest.mark.parametrize("param", ["api-key", "access_token", "x-api-key"])
def test_other_spellings_of_a_key_parameter_are_refused(work, param):
    state = work / "state.db"
    try:
        Migration.create(SOURCE, f"qdrant://{work}/q?collection=c&{param}={SECRET}",
                         migration_id="spelling", state=state)
    except SecretInURI as exc:
        assert_clean("the refusal", str(exc))
        return
    raw = b"".join(p.read_bytes() for p in work.glob("state.db*"))
    assert SECRET.encode() not in raw, "accepted, and the key is now in the state file"
    raise AssertionError("accepted a URI carrying a key")


def test_library_refusals_do_not_echo(work):
    for name, uri in URIS_WITH_CREDENTIALS.items():
        with pytest.raises(SecretInURI) as err:
            Migration.create(SOURCE, uri, migration_id=name, state=work / "lib.db")
        text = f"{err.value} {err.value!r} {err.value.args!r} {err.value.__cause__!r}"
        assert_clean(f"exception for {name}", text + repr(err.value.__context__))
    assert_clean("lib.db", (work / "lib.db").read_bytes() if (work / "lib.db").exists() else b"")


def _inprocess_cli(args: list[str], work: Path):
    import logging

    from typer.testing import CliRunner

    from vmkit.cli import app

    logger = logging.getLogger("vmkit")
    handlers, level = list(logger.handlers), logger.level
    try:
        state = [] if args[0] == "plan" else ["--state", str(work / "state.db")]
        return CliRunner().invoke(app, ["--log-file", str(work / "cli.log"), *args, *state])
    finally:
        logger.handlers, logger.level = handlers, level
