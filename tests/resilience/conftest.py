"""Fixtures for the reliability suite."""

from __future__ import annotations

import functools

import pytest
import tenacity


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays vmkit's retry policy asks for, recorded instead of slept.

    ``vmkit.core.retry`` builds a ``tenacity.Retrying`` per call; the one built here records its
    sleeps (tenacity's own seam for this), so the policy (Retry-After, exponential, cap,
    jitter) is observed exactly and no test waits on a wall clock.
    """
    import vmkit.core.retry

    sleeps: list[float] = []
    monkeypatch.setattr(vmkit.core.retry, "Retrying", functools.partial(tenacity.Retrying, sleep=sleeps.append))
    return sleeps
