"""The mechanics every retry in tierflow shares: the loop, exponential backoff with
jitter, and reading an error's HTTP status and `Retry-After`.

What counts as transient, and what a failure becomes, differs: model calls know the
providers' errors (`tierflow.models.retry`), tool calls know `TransientError` and the
errors governance never retries (`tierflow.governance.retry`). Like `errors`, every room
may import this module; it imports nothing of tierflow.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

# After the failure of attempt `retry` (1-based): the retry to make (its "delay_s" is
# slept before it), or None to let the error propagate. It may raise instead.
Decide = Callable[[Exception, int], Any]


def exponential_delay_s(
    retry: int, first_s: float, max_s: float, jitter: float, draw: Callable[[], float]
) -> float:
    """`first_s` doubled per retry up to `max_s`, shortened at random by up to `jitter`
    (so callers that failed together don't retry together)."""
    return min(first_s * 2.0 ** (retry - 1), max_s) * (1 - jitter * draw())


def status_of(error: BaseException) -> int | None:
    """The HTTP status an error carries, however its library spells it (`status_code`,
    `status`, `code`, on the error or its `response`)."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status_code", "status", "code"):
            status = getattr(holder, name, None)
            if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
                return status
    return None


def response_headers(error: BaseException) -> Mapping[str, str]:
    headers = getattr(getattr(error, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def retry_after_s(error: BaseException, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds the failure asked to wait, or None: the error's own `retry_after_s`, else
    its response's `retry-after-ms`, or `Retry-After` as seconds or as an HTTP date."""
    asked = getattr(error, "retry_after_s", None)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
        return float(asked)
    headers = response_headers(error)
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retry_loop(
    call: Callable[[], T],
    decide: Decide,
    *,
    on_retry: Callable[[Any], None] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """`call()` until it succeeds or `decide` gives up."""
    retry = 0
    while True:
        try:
            return call()
        except Exception as error:
            retry += 1
            step = decide(error, retry)
            if step is None:
                raise
        if on_retry is not None:
            on_retry(step)
        sleep(step["delay_s"])


async def aretry_loop(
    call: Callable[[], Awaitable[T]],
    decide: Decide,
    *,
    on_retry: Callable[[Any], None] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """The async twin of `retry_loop`."""
    retry = 0
    while True:
        try:
            return await call()
        except Exception as error:
            retry += 1
            step = decide(error, retry)
            if step is None:
                raise
        if on_retry is not None:
            on_retry(step)
        await sleep(step["delay_s"])
