"""Retrying a model call on transient provider errors, with backoff that honours
`Retry-After`.

tierflow retries here rather than inside the OpenAI client (which it builds with
`max_retries=0`) for three reasons: a connection dropped mid-stream surfaces while the
response is read, after the client's own retry loop has returned; each retry is
reported (`on_retry`) so a streaming run can show it; and the delays are computed by
one function that tests can read.

Transient: what LangChain marks `is_retryable` (rate limits, 5xx, connection errors,
timeouts), plus HTTP 408 and 409, unless the server says `x-should-retry: false`.
Anything else a provider reports (400, 401, 403, 404, …) fails at once. Either way the
caller gets a `ModelError` with one line saying what happened.

The policy (`RetryPolicy`), the report of a retry (`RetryEvent`) and the loop are shared
with tool calls (`tierflow.foundation.retry`); a model call's policy is built from its
provider settings (`provider_retry_policy`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from langchain_core.exceptions import ModelError as LangChainModelError

from tierflow.errors import ModelError
from tierflow.foundation.retry import (
    Decide,
    OnRetry,
    RetryEvent,
    RetryPolicy,
    aretry_loop,
    next_retry,
    response_headers,
    retry_loop,
    status_of,
)

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 429})
AUTH_STATUS = frozenset({401, 403})
JITTER = 0.25  # a backoff delay is shortened by up to this fraction, at random
MAX_RETRY_AFTER_S = 120.0  # a server asking for a longer wait fails the call instead
REASON_CHARS = 240


def provider_retry_policy(max_retries: int, backoff_s: float) -> RetryPolicy:
    """A model call's policy, from its provider settings."""
    return RetryPolicy(
        max_retries=max_retries,
        backoff_s=backoff_s,
        jitter=JITTER,
        max_retry_after_s=MAX_RETRY_AFTER_S,
    )


def _openai_errors(*names: str) -> tuple[type[BaseException], ...]:
    """The OpenAI SDK's error classes `names`; none while the SDK is not imported, as
    then no error is one of them. (It loads with the first OpenAI model, not before.)"""
    sdk = sys.modules.get("openai")
    return tuple(getattr(sdk, name) for name in names) if sdk is not None else ()


def is_provider_error(error: BaseException) -> bool:
    return isinstance(error, (LangChainModelError, *_openai_errors("OpenAIError")))


def is_transient_provider_error(error: BaseException) -> bool:
    should_retry = response_headers(error).get("x-should-retry")
    if should_retry in ("true", "false"):
        return should_retry == "true"
    if isinstance(error, LangChainModelError) and error.is_retryable:
        return True
    if isinstance(error, _openai_errors("APIConnectionError")):  # includes timeouts
        return True
    status = status_of(error)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def describe(error: BaseException) -> str:
    """One line: what the provider said or what happened to the connection."""
    status = status_of(error)
    if status is not None:
        body = getattr(error, "body", None)
        message = body.get("message") if isinstance(body, Mapping) else None
        text = str(message or getattr(error, "message", "") or error)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        reason = f"HTTP {status} {phrase}: {text}"
    elif isinstance(error, _openai_errors("APITimeoutError")):
        reason = "the request timed out"
    elif isinstance(error, (LangChainModelError, *_openai_errors("APIConnectionError"))):
        root = _root_cause(error)
        detail = f" ({type(root).__name__}: {root})" if root is not error else ""
        reason = f"connection failed or dropped{detail}"
    else:
        reason = f"{type(error).__name__}: {error}"
    flat = " ".join(reason.split())
    return flat if len(flat) <= REASON_CHARS else flat[: REASON_CHARS - 1] + "…"


def _root_cause(error: BaseException) -> BaseException:
    # LangChain wraps the SDK's error, which wraps the HTTP library's: the last one says
    # what happened on the wire ("incomplete chunked read", "Connection refused").
    seen = {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        seen.add(id(error))
    return error


def next_step(
    error: BaseException, policy: RetryPolicy, retry: int, label: str, auth_hint: str = ""
) -> RetryEvent | ModelError | None:
    """After `error`, before retry number `retry` (1-based): the retry to make, the
    `ModelError` to raise instead, or None for an error that is not a provider's (it
    propagates unchanged)."""
    if not is_provider_error(error):
        return None
    reason = describe(error)
    if not is_transient_provider_error(error):
        hint = f"; {auth_hint}" if auth_hint and status_of(error) in AUTH_STATUS else ""
        return ModelError(f"{label}: {reason} (not retried{hint})")
    step = next_retry(error, policy, retry, reason)
    return ModelError(f"{label}: {reason} ({step})") if isinstance(step, str) else step


def _decide(policy: RetryPolicy, label: str, auth_hint: str) -> Decide:
    def decide(error: Exception, retry: int) -> RetryEvent | None:
        step = next_step(error, policy, retry, label, auth_hint)
        if isinstance(step, ModelError):
            raise step from error
        return step

    return decide


def call_model_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    label: str,
    auth_hint: str = "",
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """`call()`, retried on transient provider errors; provider errors become a
    `ModelError` naming `label` (e.g. the tier and model)."""
    return retry_loop(call, _decide(policy, label, auth_hint), on_retry=on_retry, sleep=sleep)


async def acall_model_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    label: str,
    auth_hint: str = "",
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """The async twin of `call_model_with_retries`."""
    return await aretry_loop(
        call, _decide(policy, label, auth_hint), on_retry=on_retry, sleep=sleep
    )
