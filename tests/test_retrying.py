"""The retry mechanics model calls and tool calls share."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tierflow.foundation.retry import exponential_delay_s, retry_after_s, retry_loop, status_of
from tierflow.governance.retry import TransientError

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class HttpFailure(Exception):
    def __init__(self, status: int, **headers: str) -> None:
        super().__init__(f"HTTP {status}")
        self.response = SimpleNamespace(status_code=status, headers=headers)


def test_status_is_read_however_the_library_spells_it() -> None:
    assert status_of(HttpFailure(503)) == 503
    assert status_of(SimpleNamespace(status=429)) == 429  # type: ignore[arg-type]
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

    def decide(error: Exception, retry: int) -> dict[str, Any] | None:
        return {"delay_s": retry / 10} if retry <= 2 else None

    with pytest.raises(RuntimeError, match="attempt 3"):
        retry_loop(flaky, decide, sleep=slept.append)
    assert attempts == [1, 2, 3]
    assert slept == [0.1, 0.2]
