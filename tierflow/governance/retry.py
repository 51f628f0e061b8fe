"""Retrying tool calls that failed for a transient reason, with backoff and jitter.

Transient: a `TransientError` a tool raises on purpose (its backend said "busy", a lock
was held), a timeout, a dropped connection, and any error carrying an HTTP status of
408, 425, 429 or 5xx (`status_code`, `status`, `code`, or `response.status_code`, as
httpx, requests and urllib spell it). Never transient, whatever else they carry: a
validation error (the same arguments fail the same way), a permission denial, an
exhausted budget — retrying those only burns time and money.

Delays double from `first_s` up to `max_s`, each shortened at random by up to `jitter`
(so a crowd of callers that failed together doesn't retry together); a `retry_after_s`
the error carries (or its response's `Retry-After`, as seconds or an HTTP date) replaces
the backoff, up to `max_retry_after_s`. Sleep and the random draw are injected. The loop,
the backoff and the reading of statuses and `Retry-After` are shared with model calls
(`tierflow.foundation.retry`); what is transient differs (`tierflow.models.retry` knows the
providers' errors).

A retried side-effecting tool gets the same idempotency key on every attempt, so a
first attempt that did its work before failing is not done twice by the second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from typing_extensions import TypedDict

from tierflow.foundation.retry import (
    aretry_loop,
    exponential_delay_s,
    retry_after_s,
    retry_loop,
    status_of,
)
from tierflow.foundation.spec import SpecModel
from tierflow.governance.errors import BudgetExceeded, PermissionDenied

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429})
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    ValidationError,
    PermissionDenied,
    BudgetExceeded,
)


class TransientError(Exception):
    """Raise it from a tool for a failure worth retrying; `retry_after_s` if the
    backend said when to come back."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Backoff(SpecModel):
    """How often and how patiently a tool call is retried (`retries=0`: never)."""

    retries: int = Field(default=2, ge=0)
    first_s: float = Field(default=0.5, ge=0)
    max_s: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after_s: float = Field(default=60.0, ge=0)

    def delay_s(self, retry: int, draw: Callable[[], float] = random.random) -> float:
        """The delay before retry number `retry` (1-based) when the error named none."""
        return exponential_delay_s(retry, self.first_s, self.max_s, self.jitter, draw)


NO_RETRY = Backoff(retries=0)


class RetryEvent(TypedDict):
    """One retry about to happen, as `on_retry` sees it."""

    retry: int  # 1 for the first retry
    retries: int  # how many the policy allows
    delay_s: float
    reason: str


OnRetry = Callable[[RetryEvent], None]


def is_transient(error: BaseException) -> bool:
    if isinstance(error, NEVER_RETRIED):
        return False
    if isinstance(error, TransientError | TimeoutError | ConnectionError):
        return True
    status = status_of(error)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def _next_retry(
    error: Exception,
    backoff: Backoff,
    retry: int,
    transient: Callable[[BaseException], bool],
    draw: Callable[[], float],
) -> RetryEvent | None:
    """The retry to make after `error`, or None to give up (the error propagates)."""
    if not transient(error):
        return None
    if retry > backoff.retries:
        attempts = backoff.retries + 1
        error.add_note(f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}")
        return None
    asked = retry_after_s(error)
    if asked is not None and asked > backoff.max_retry_after_s:
        error.add_note(
            f"not retried: asked to wait {asked:g}s, over {backoff.max_retry_after_s:g}s"
        )
        return None
    return RetryEvent(
        retry=retry,
        retries=backoff.retries,
        delay_s=asked if asked is not None else backoff.delay_s(retry, draw),
        reason=f"{type(error).__name__}: {error}",
    )


def call_with_retries(
    call: Callable[[], T],
    backoff: Backoff,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """`call()`, retried on transient errors; the last error propagates unchanged
    (with a note saying how many attempts were made)."""
    return retry_loop(
        call,
        lambda error, retry: _next_retry(error, backoff, retry, transient, draw),
        on_retry=on_retry,
        sleep=sleep,
    )


async def acall_with_retries(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """The async twin of `call_with_retries`."""
    return await aretry_loop(
        call,
        lambda error, retry: _next_retry(error, backoff, retry, transient, draw),
        on_retry=on_retry,
        sleep=sleep,
    )
