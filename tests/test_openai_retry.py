"""The retry policy's decisions, from errors shaped exactly as openai raises them."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2
import openai
import pytest

from tierflow.errors import ModelError
from tierflow.foundation.retry import RetryPolicy, retry_after_s
from tierflow.models.retry import (
    call_model_with_retries,
    is_transient_provider_error,
    provider_retry_policy,
)

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def status_error(status: int, **headers: str) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"Error code: {status}", response=response, body=None)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    assert is_transient_provider_error(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_statuses(status: int) -> None:
    assert not is_transient_provider_error(status_error(status))


def test_the_server_can_say_whether_to_retry() -> None:
    assert not is_transient_provider_error(status_error(503, **{"x-should-retry": "false"}))
    assert is_transient_provider_error(status_error(400, **{"x-should-retry": "true"}))


def test_connection_errors_and_timeouts_are_transient() -> None:
    assert is_transient_provider_error(openai.APIConnectionError(request=REQUEST))
    assert is_transient_provider_error(openai.APITimeoutError(request=REQUEST))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Thu, 26 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header(headers: dict[str, str], seconds: float | None) -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s(status_error(429, **headers), now=lambda: now) == seconds


def test_backoff_doubles_up_to_the_cap_with_jitter_below() -> None:
    policy = provider_retry_policy(max_retries=6, backoff_s=0.5)
    assert [policy.delay_s(n, draw=lambda: 0.0) for n in range(1, 7)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 8.0,
    ]  # fmt: skip
    assert policy.delay_s(1, draw=lambda: 1.0) == 0.375


def test_retries_sleep_what_the_server_asks_then_give_up_in_one_line() -> None:
    errors = [status_error(429, **{"retry-after": "3"}), status_error(503), status_error(503)]
    slept: list[float] = []

    def call() -> str:
        raise errors.pop(0)

    with pytest.raises(ModelError) as raised:
        call_model_with_retries(
            call,
            provider_retry_policy(max_retries=2, backoff_s=0.25),
            label="tier 'fast'",
            sleep=slept.append,
        )
    assert slept[0] == 3.0
    assert 0.375 <= slept[1] <= 0.5
    assert str(raised.value) == (
        "tier 'fast': HTTP 503 Service Unavailable: Error code: 503 (gave up after 3 attempts)"
    )
    assert errors == []


def test_errors_that_are_not_the_providers_pass_through_untouched() -> None:
    def call() -> str:
        raise ValueError("a bug in a tool schema")

    with pytest.raises(ValueError, match="a bug in a tool schema"):
        call_model_with_retries(
            call, RetryPolicy(max_retries=3), label="x", sleep=lambda _: pytest.fail("slept")
        )


def test_a_success_after_a_retry_returns_its_value() -> None:
    outcomes: list[object] = [status_error(500), "answer"]
    notices: list[dict[str, object]] = []

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    result = call_model_with_retries(
        call,
        provider_retry_policy(max_retries=1, backoff_s=0.0),
        label="x",
        on_retry=lambda notice: notices.append(dict(notice)),
        sleep=lambda _: None,
    )
    assert result == "answer"
    assert notices == [
        {
            "retry": 1,
            "max_retries": 1,
            "delay_s": 0.0,
            "retry_after_s": None,
            "reason": "HTTP 500 Internal Server Error: Error code: 500",
        }
    ]
