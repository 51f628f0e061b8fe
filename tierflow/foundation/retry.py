"""Retries in tierflow: one policy (`RetryPolicy`), one report of a retry (`RetryEvent`),
and the mechanics every retry shares — the loop, exponential backoff with jitter, and
reading an error's HTTP status and `Retry-After`.

What counts as transient, and what a failure becomes, differs: model calls know the
providers' errors (`tierflow.models.retry`), tool calls know `TransientError` and the
errors governance never retries (`tierflow.governance.retry`). Like `errors`, every room
may import this module; it imports nothing of tierflow but `errors` and `foundation`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import Field
from typing_extensions import TypedDict

from tierflow.foundation.spec import SpecModel

T = TypeVar("T")


class RetryPolicy(SpecModel):
    """How often and how patiently a call is retried (`max_retries=0`: never).

    Delays double from `backoff_s` up to `max_backoff_s`, each shortened at random by up
    to `jitter` (so callers that failed together don't retry together). A wait the
    failure asked for (`Retry-After`) replaces the backoff, up to `max_retry_after_s`;
    asking for longer gives up instead of waiting. The defaults are a tool call's; a
    model call's policy comes from its provider settings
    (`tierflow.models.retry.provider_retry_policy`)."""

    max_retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after_s: float = Field(default=60.0, ge=0)

    def delay_s(self, retry: int, draw: Callable[[], float] = random.random) -> float:
        """The delay before retry number `retry` (1-based) when the failure named none."""
        return exponential_delay_s(retry, self.backoff_s, self.max_backoff_s, self.jitter, draw)


NO_RETRY = RetryPolicy(max_retries=0)


class RetryEvent(TypedDict):
    """One retry about to happen, as `on_retry` sees it (and, for a model call, the
    "custom" stream mode, with `"event": "retry"` and the node added)."""

    retry: int  # 1 for the first retry
    max_retries: int
    delay_s: float
    retry_after_s: float | None  # the wait the failure asked for, if it did
    reason: str


OnRetry = Callable[[RetryEvent], None]
# After the failure of attempt `retry` (1-based): the retry to make (its "delay_s" is
# slept before it), or None to let the error propagate. It may raise instead.
Decide = Callable[[Exception, int], RetryEvent | None]


def next_retry(
    error: BaseException,
    policy: RetryPolicy,
    retry: int,
    reason: str,
    draw: Callable[[], float] = random.random,
) -> RetryEvent | str:
    """After a transient `error` failed attempt `retry`: the retry to make, or why none
    is made ("gave up after 3 attempts")."""
    if retry > policy.max_retries:
        attempts = policy.max_retries + 1
        return f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
    asked = retry_after_s(error)
    if asked is not None and asked > policy.max_retry_after_s:
        return (
            f"asked to retry after {asked:g}s, longer than the "
            f"{policy.max_retry_after_s:g}s tierflow waits"
        )
    return RetryEvent(
        retry=retry,
        max_retries=policy.max_retries,
        delay_s=asked if asked is not None else policy.delay_s(retry, draw),
        retry_after_s=asked,
        reason=reason,
    )


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
    on_retry: OnRetry | None = None,
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
    on_retry: OnRetry | None = None,
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
