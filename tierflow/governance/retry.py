"""Retrying tool calls that failed for a transient reason, by a `RetryPolicy`.

Transient: a `TransientError` a tool raises on purpose (its backend said "busy", a lock
was held), a timeout, a dropped connection, and any error carrying an HTTP status of
408, 425, 429 or 5xx (`status_code`, `status`, `code`, or `response.status_code`, as
httpx, requests and urllib spell it). Never transient, whatever else they carry: a
validation error (the same arguments fail the same way), a permission denial, an
exhausted budget — retrying those only burns time and money.

The policy, the loop, the backoff and the reading of statuses and `Retry-After` are
shared with model calls (`tierflow.foundation.retry`); what is transient differs
(`tierflow.models.retry` knows the providers' errors). Sleep and the random draw are
injected.

A retried side-effecting tool gets the same idempotency key on every attempt, so a
first attempt that did its work before failing is not done twice by the second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from tierflow.errors import BudgetExceeded, PermissionDenied, TransientError
from tierflow.foundation.retry import (
    Decide,
    OnRetry,
    RetryEvent,
    RetryPolicy,
    aretry_loop,
    next_retry,
    retry_loop,
    status_of,
)

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429})
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    ValidationError,
    PermissionDenied,
    BudgetExceeded,
)


def is_transient_tool_error(error: BaseException) -> bool:
    if isinstance(error, NEVER_RETRIED):
        return False
    if isinstance(error, TransientError | TimeoutError | ConnectionError):
        return True
    status = status_of(error)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def _decide(
    policy: RetryPolicy, transient: Callable[[BaseException], bool], draw: Callable[[], float]
) -> Decide:
    def decide(error: Exception, retry: int) -> RetryEvent | None:
        if not transient(error):
            return None
        step = next_retry(error, policy, retry, f"{type(error).__name__}: {error}", draw)
        if isinstance(step, str):  # the error propagates, saying why it was not retried
            error.add_note(step)
            return None
        return step

    return decide


def call_tool_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool] = is_transient_tool_error,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """`call()`, retried on transient errors; the last error propagates unchanged
    (with a note saying how many attempts were made)."""
    return retry_loop(call, _decide(policy, transient, draw), on_retry=on_retry, sleep=sleep)


async def acall_tool_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool] = is_transient_tool_error,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """The async twin of `call_tool_with_retries`."""
    return await aretry_loop(call, _decide(policy, transient, draw), on_retry=on_retry, sleep=sleep)
