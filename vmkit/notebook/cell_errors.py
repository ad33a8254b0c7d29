"""A vmkit error in a notebook cell, shown as one readable sentence with the fix.

A bad URI or an unreachable database otherwise shows an 80-line traceback through tenacity
and concurrent.futures with the one useful sentence at the bottom (the CLI prints that
sentence alone). ``friendly_errors()`` installs an IPython handler for ``VmkitError`` only:
the cell still fails (papermill and Run All stop there), its error output is the sentence and
the fix, and the full traceback goes to the log (logger ``vmkit.notebook.cell_errors``, DEBUG)
and stays available with ``%tb``. Any other exception keeps IPython's own traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from vmkit.core import errors as e

log = logging.getLogger("vmkit.notebook.cell_errors")

# The first class the error is an instance of gives the fix (most specific first).
FIXES: tuple[tuple[type[BaseException], str], ...] = (
    (e.MissingDependency, ""),  # the message is the fix (pip install 'vmkit[...]')
    (e.SecretInURI, "put the secret in an environment variable and name it in the URI"),
    (e.ConfigError, "check the URI and the environment variables it names, then run the cell again"),
    (e.LeaseHeld, "another process runs this migration: wait for it, or stop it "
                  "(`vmkit migrate stop --id ...`) and run the cell again"),
    (e.UnknownMigration, "check migration_id and state_path"),
    (e.PlanError, "change the plan's inputs (options, target) or the source, then plan again"),
    (e.TransientError, "the database did not answer: check that it runs and is reachable at "
                       "the URI's address, then run the cell again (a run resumes from its checkpoint)"),
    (e.TerminalError, "the database refused the request: check the URI, the credentials' "
                      "environment variable and the collection"),
    (e.StateError, ""),
    (e.VmkitError, ""),
)
MAX_LINES = 8  # a plan's error list stays readable; the log keeps all of it


def one_sentence(exc: BaseException) -> str:
    """``Kind: message`` (at most MAX_LINES lines), then ``fix: ...`` when one is known."""
    lines = [ln.rstrip() for ln in str(exc).strip().splitlines() if ln.strip()] or [""]
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES] + [f"... ({len(lines) - MAX_LINES} more lines in the log)"]
    text = f"{type(exc).__name__}: " + "\n".join(lines)
    fix = next((f for cls, f in FIXES if isinstance(exc, cls)), "")
    return f"{text}\nfix: {fix}" if fix else text


def _handler(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
             tb_offset: int | None = None) -> list[str]:
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb
    log.debug("error in a cell (shown as one sentence)", exc_info=(etype, value, tb))
    stb = [f"\x1b[31m{one_sentence(value)}\x1b[0m", "(full traceback: %tb, or the DEBUG log)"]
    # run_code ignores a custom handler's return value: show it as the cell's error ourselves,
    # so the front end marks the cell failed and papermill stops there.
    shell._showtraceback(etype, value, stb)
    return stb


def friendly_errors(shell: Any = None) -> bool:
    """Install the handler in the running IPython (True), or do nothing outside it (False)."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((e.VmkitError,), _handler)
    return True
