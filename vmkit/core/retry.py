"""Retry policy: only TransientError is retried, with capped, jittered exponential backoff that
honours a server's Retry-After. Everything else fails fast."""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from vmkit.core.errors import TransientError

log = logging.getLogger("vmkit.core.retry")
T = TypeVar("T")


class _WaitHonouringRetryAfter:
    def __init__(self, initial: float, cap: float) -> None:
        self.cap = cap
        self.backoff = wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(float(after), self.cap)
        return float(self.backoff(state))


def call_with_retry(
    fn: Callable[..., T], *args: Any, attempts: int = 8, initial_s: float = 0.2, cap_s: float = 30.0,
    on_retry: Callable[[BaseException, int], None] | None = None, **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)``, retried on TransientError up to ``attempts`` times in all."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("transient error (attempt %d of %d): %s", state.attempt_number, attempts, exc)
        if on_retry is not None and exc is not None:
            on_retry(exc, state.attempt_number)

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(attempts),
        wait=_WaitHonouringRetryAfter(initial_s, cap_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)
