"""The retry policy, its decisions and the mechanics model calls and tool calls share."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from tierflow.errors import SpecError, TransientError
from tierflow.foundation.retry import (
    NO_RETRY,
    RetryEvent,
    RetryPolicy,
    exponential_delay_s,
    next_retry,
    retry_after_s,
    retry_loop,
    status_of,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class HttpFailure(Exception):
    def __init__(self, status: int, **headers: str) -> None:
        super().__init__(f"HTTP {status}")
        self.response = SimpleNamespace(status_code=status, headers=headers)


class StatusFailure(Exception):
    """An error that carries its status itself, as `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def test_status_is_read_however_the_library_spells_it() -> None:
    assert status_of(HttpFailure(503)) == 503
    assert status_of(StatusFailure(429)) == 429
    assert status_of(ValueError("no status")) is None


@pytest.mark.parametrize(
    ("error", "seconds"),
    [
        (HttpFailure(429, **{"retry-after": "3"}), 3.0),
        (HttpFailure(429, **{"retry-after-ms": "250"}), 0.25),
        (HttpFailure(503, **{"retry-after": "Thu, 26 Nov 2026 12:00:07 GMT"}), 7.0),
        (HttpFailure(503, **{"retry-after": "Thu, 26 Nov 2026 11:00:00 GMT"}), 0.0),
        (TransientError("busy", retry_after_s=2.5), 2.5),
        (HttpFailure(500), None),
    ],
)
def test_retry_after_in_every_form(error: Exception, seconds: float | None) -> None:
    assert retry_after_s(error, now=lambda: NOW) == seconds


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    assert [exponential_delay_s(r, 1.0, 5.0, 0.5, lambda: 0.0) for r in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        4.0,
        5.0,
    ]
    assert exponential_delay_s(2, 1.0, 5.0, 0.5, lambda: 1.0) == 1.0


def test_the_loop_sleeps_what_decide_says_and_gives_up_when_it_says_so() -> None:
    attempts: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        attempts.append(len(attempts) + 1)
        raise RuntimeError(f"attempt {len(attempts)}")

    def decide(error: Exception, retry: int) -> RetryEvent | None:
        if retry > 2:
            return None
        return RetryEvent(
            retry=retry, max_retries=2, delay_s=retry / 10, retry_after_s=None, reason=""
        )

    with pytest.raises(RuntimeError, match="attempt 3"):
        retry_loop(flaky, decide, sleep=slept.append)
    assert attempts == [1, 2, 3]
    assert slept == [0.1, 0.2]


def test_the_policy_is_spec_data() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=1.0)
    assert RetryPolicy.model_validate_json(policy.model_dump_json()) == policy
    assert NO_RETRY.max_retries == 0
    with pytest.raises(SpecError, match=r"retrypolicy\.jitter"):
        RetryPolicy(jitter=2)


def test_next_retry_waits_what_was_asked_or_says_why_not() -> None:
    policy = RetryPolicy(max_retries=2, backoff_s=1.0, jitter=0.0, max_retry_after_s=10.0)
    assert next_retry(HttpFailure(503), policy, 1, "busy") == RetryEvent(
        retry=1, max_retries=2, delay_s=1.0, retry_after_s=None, reason="busy"
    )
    asked = HttpFailure(429, **{"retry-after": "4"})
    step = next_retry(asked, policy, 2, "slow down")
    assert not isinstance(step, str)
    assert (step["delay_s"], step["retry_after_s"]) == (4.0, 4.0)
    assert next_retry(asked, policy, 3, "slow down") == "gave up after 3 attempts"
    too_long = HttpFailure(429, **{"retry-after": "30"})
    assert next_retry(too_long, policy, 1, "slow down") == (
        "asked to retry after 30s, longer than the 10s tierflow waits"
    )
