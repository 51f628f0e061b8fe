"""Retries: transient failures are retried with backoff and jitter; validation errors
and denials never are. Sleep and the random draw are injected."""

from __future__ import annotations

import asyncio
import urllib.error
from concurrent.futures import TimeoutError as FutureTimeout
from email.message import Message
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from tierflow.errors import BudgetExceeded, PermissionDenied, SpecError, TransientError
from tierflow.foundation.retry import NO_RETRY, RetryEvent, RetryPolicy
from tierflow.governance.retry import (
    acall_tool_with_retries,
    call_tool_with_retries,
    is_transient_tool_error,
)

POLICY = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=3.0, jitter=0.5)


class FlakyTool:
    """Fails `failures` times with `error()`, then returns "ok"; counts its runs."""

    def __init__(self, failures: int, error: Any) -> None:
        self.failures = failures
        self.error = error
        self.runs = 0

    def __call__(self) -> str:
        self.runs += 1
        if self.runs <= self.failures:
            raise self.error()
        return "ok"


def run(tool: FlakyTool, policy: RetryPolicy = POLICY) -> tuple[list[float], list[RetryEvent]]:
    slept: list[float] = []
    events: list[RetryEvent] = []
    assert (
        call_tool_with_retries(
            tool, policy, sleep=slept.append, draw=lambda: 0.5, on_retry=events.append
        )
        == "ok"
    )
    return slept, events


def test_a_transient_error_is_retried_with_doubling_jittered_delays() -> None:
    tool = FlakyTool(3, lambda: TransientError("backend busy"))
    slept, events = run(tool)
    assert tool.runs == 4
    # 1, 2, 4→capped at 3; each shortened by jitter 0.5 times draw 0.5 = 25 %.
    assert slept == [0.75, 1.5, 2.25]
    assert [e["retry"] for e in events] == [1, 2, 3]
    assert events[0] == RetryEvent(
        retry=1,
        max_retries=3,
        delay_s=0.75,
        retry_after_s=None,
        reason="TransientError: backend busy",
    )


def test_jitter_uses_the_draw() -> None:
    assert POLICY.delay_s(1, draw=lambda: 0.0) == 1.0
    assert POLICY.delay_s(1, draw=lambda: 1.0) == 0.5


def test_giving_up_raises_the_last_error_with_a_note() -> None:
    tool = FlakyTool(10, lambda: TransientError("backend busy"))
    with pytest.raises(TransientError) as raised:
        call_tool_with_retries(tool, POLICY, sleep=lambda _: None, draw=lambda: 0.0)
    assert tool.runs == 4
    assert raised.value.__notes__ == ["gave up after 4 attempts"]


class Refund(BaseModel):
    amount_usd: float


def validation_error() -> ValidationError:
    try:
        Refund.model_validate({"amount_usd": "lots"})
    except ValidationError as error:
        return error
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    "error",
    [
        validation_error,
        lambda: PermissionDenied("refunds:write", "agent:x is not granted refunds:write"),
        lambda: BudgetExceeded("run:t1", "budget run:t1 exceeded"),
        lambda: ValueError("order 99 does not exist"),
        lambda: SpecError("tools.refund", "bad"),
    ],
)
def test_validation_errors_and_denials_are_never_retried(error: Any) -> None:
    tool = FlakyTool(1, error)
    slept: list[float] = []
    with pytest.raises(Exception) as raised:
        call_tool_with_retries(tool, POLICY, sleep=slept.append)
    assert isinstance(raised.value, type(error()))
    assert tool.runs == 1
    assert slept == []


def http_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/refunds")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (500, True),
        (503, True),
        (408, True),
        (400, False),
        (401, False),
        (404, False),
        (422, False),
    ],
)
def test_http_statuses(status: int, transient: bool) -> None:
    assert is_transient_tool_error(http_error(status)) is transient
    urllib_error = urllib.error.HTTPError("http://127.0.0.1/", status, "x", Message(), None)
    assert is_transient_tool_error(urllib_error) is transient


def test_timeouts_and_dropped_connections_are_transient() -> None:
    assert is_transient_tool_error(TimeoutError())
    assert is_transient_tool_error(FutureTimeout())
    assert is_transient_tool_error(ConnectionResetError())


def test_retry_after_replaces_the_backoff() -> None:
    tool = FlakyTool(1, lambda: http_error(429, {"Retry-After": "7"}))
    slept, events = run(tool)
    assert slept == [7.0]
    assert events[0]["retry_after_s"] == 7.0
    tool = FlakyTool(1, lambda: TransientError("locked", retry_after_s=2.5))
    slept, _ = run(tool)
    assert slept == [2.5]


def test_a_retry_after_too_long_is_not_waited_for() -> None:
    tool = FlakyTool(1, lambda: TransientError("maintenance", retry_after_s=3600))
    with pytest.raises(TransientError) as raised:
        call_tool_with_retries(tool, POLICY, sleep=lambda _: None)
    assert tool.runs == 1
    assert raised.value.__notes__ == [
        "asked to retry after 3600s, longer than the 60s tierflow waits"
    ]


def test_no_retry_policy() -> None:
    tool = FlakyTool(1, lambda: TransientError("busy"))
    with pytest.raises(TransientError):
        call_tool_with_retries(tool, NO_RETRY, sleep=lambda _: None)
    assert tool.runs == 1


def test_async_retries() -> None:
    runs = 0
    slept: list[float] = []

    async def tool() -> str:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise TransientError("busy")
        return "ok"

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    result = asyncio.run(acall_tool_with_retries(tool, POLICY, sleep=fake_sleep, draw=lambda: 0.0))
    assert result == "ok"
    assert runs == 3
    assert slept == [1.0, 2.0]


def test_async_validation_error_not_retried() -> None:
    runs = 0

    async def tool() -> str:
        nonlocal runs
        runs += 1
        raise validation_error()

    async def fake_sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(ValidationError):
        asyncio.run(acall_tool_with_retries(tool, POLICY, sleep=fake_sleep))
    assert runs == 1
