"""Concurrency caps and rate limits on tool calls and model calls, in one process.

Declared as data (`CallLimits`): a global cap on concurrent tool calls and on
concurrent model calls, caps per tool and per provider, and token-bucket rate limits
per provider (requests per minute, tokens per minute). `Capacity` is the live object
for one process: build it once and share it by every run the process executes (caps
are per process; budgets, in the database, are the limit shared across processes).

A call passes its gates most specific first — `tool:refund`, then `tools` — so a call
waiting for its own tool's slot holds no global slot meanwhile. A model call takes its
slots first, then its rate-limit tokens, so a burst of waiters released together can't
exceed the provider's rate.

Rate limits reserve: `TokenBucket.take(n)` debits the bucket at once, possibly below
zero, and returns how long the caller must wait for the bucket to be back at zero.
Callers are served in the order they asked, nobody polls, and a request for more than
the bucket holds waits proportionally instead of forever. Time and sleeping are
injected (`clock`, `sleep`, `asleep`), so tests run on a fake clock.

The async calls never block their event loop: a coroutine waits for a slot on a future
and for its rate on `asleep`; the gates' and buckets' locks are held for a few
instructions, never across a wait; and `on_wait` — which may write to the database (the
runner marks a waiting run `waiting`) — is called in a worker thread, in order, and has
heard every event before the call goes ahead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from typing import Any

from pydantic import Field, field_validator

from tierflow.foundation.spec import SpecModel
from tierflow.governance.gate import Gate, OnWait, WaitEvent

SECONDS_PER_MINUTE = 60.0


class RateLimit(SpecModel):
    """A provider's limits per minute. A bucket holds one minute's worth: an idle
    provider can take that much at once, then the rate applies."""

    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)


class CallLimits(SpecModel):
    """How many tool and model calls may run at once, and how fast models may be called."""

    tools: int | None = Field(default=None, ge=1)
    models: int | None = Field(default=None, ge=1)
    per_tool: dict[str, int] = Field(default_factory=dict)
    per_provider: dict[str, int] = Field(default_factory=dict)
    rates: dict[str, RateLimit] = Field(default_factory=dict)

    @field_validator("per_tool", "per_provider")
    @classmethod
    def _caps_positive(cls, caps: dict[str, int]) -> dict[str, int]:
        for name, cap in caps.items():
            if cap < 1:
                raise ValueError(f"the cap of {name!r} must be at least 1, not {cap}")
        return caps


class TokenBucket:
    """A token bucket that lets callers reserve ahead (see the module's note)."""

    def __init__(
        self,
        name: str,
        per_minute: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate {name!r}: per_minute must be positive, not {per_minute}")
        self.name = name
        self.rate_per_s = per_minute / SECONDS_PER_MINUTE
        self.burst = per_minute if burst is None else burst
        self.clock = clock
        self._level = self.burst
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self._level = min(self.burst, self._level + (now - self._at) * self.rate_per_s)
        self._at = now

    def take(self, amount: float) -> float:
        """Debit `amount`; the seconds to wait before going ahead (0: go now)."""
        with self._lock:
            self._refill()
            self._level -= amount
            return 0.0 if self._level >= 0 else -self._level / self.rate_per_s

    def adjust(self, amount: float) -> None:
        """Credit (positive) or debit (negative) after the fact: a model call's real
        token count replaces its estimate."""
        with self._lock:
            self._refill()
            self._level = min(self.burst, self._level + amount)

    @property
    def level(self) -> float:
        with self._lock:
            self._refill()
            return self._level


class Capacity:
    """The gates and buckets of one process, built from `limits`."""

    def __init__(
        self,
        limits: CallLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or CallLimits()
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.gates: dict[str, Gate] = {}
        if self.limits.tools is not None:
            self.gates["tools"] = Gate("tools", self.limits.tools, clock=clock)
        if self.limits.models is not None:
            self.gates["models"] = Gate("models", self.limits.models, clock=clock)
        for tool, cap in self.limits.per_tool.items():
            self.gates[f"tool:{tool}"] = Gate(f"tool:{tool}", cap, clock=clock)
        for provider, cap in self.limits.per_provider.items():
            self.gates[f"provider:{provider}"] = Gate(f"provider:{provider}", cap, clock=clock)
        self.buckets: dict[str, TokenBucket] = {}
        for provider, rate in self.limits.rates.items():
            if rate.requests_per_minute is not None:
                name = f"rate:{provider}:requests"
                self.buckets[name] = TokenBucket(name, rate.requests_per_minute, clock=clock)
            if rate.tokens_per_minute is not None:
                name = f"rate:{provider}:tokens"
                self.buckets[name] = TokenBucket(name, rate.tokens_per_minute, clock=clock)

    def _gates(self, *names: str) -> list[Gate]:
        return [self.gates[name] for name in names if name in self.gates]

    def tool_gates(self, tool: str) -> list[Gate]:
        return self._gates(f"tool:{tool}", "tools")

    def model_gates(self, provider: str) -> list[Gate]:
        return self._gates(f"provider:{provider}", "models")

    def _debits(self, provider: str, tokens: int) -> list[tuple[TokenBucket, float]]:
        wanted = [(f"rate:{provider}:requests", 1.0), (f"rate:{provider}:tokens", float(tokens))]
        return [(self.buckets[name], n) for name, n in wanted if name in self.buckets and n > 0]

    def _rate_delay(self, provider: str, tokens: int, on_wait: OnWait | None) -> float:
        """Debit every bucket of the provider; the longest wait any of them asks for."""
        delay = 0.0
        for bucket, amount in self._debits(provider, tokens):
            wait = bucket.take(amount)
            if wait > 0 and on_wait is not None:
                on_wait(WaitEvent(bucket.name, "rate", "waiting", delay_s=wait))
            delay = max(delay, wait)
        return delay

    # -- sync ------------------------------------------------------------------------

    @contextmanager
    def tool_call(self, tool: str, *, on_wait: OnWait | None = None) -> Iterator[None]:
        """Hold the slots one call of `tool` needs while the block runs."""
        with _holding(self.tool_gates(tool), on_wait):
            yield

    @contextmanager
    def model_call(
        self, provider: str, *, tokens: int = 0, on_wait: OnWait | None = None
    ) -> Iterator[None]:
        """Hold a model call's slots and wait out its provider's rate limits; `tokens`
        is the call's estimated total (correct it afterwards with `settle_tokens`)."""
        with _holding(self.model_gates(provider), on_wait):
            delay = self._rate_delay(provider, tokens, on_wait)
            if delay > 0:
                self.sleep(delay)
            yield

    # -- async -----------------------------------------------------------------------

    @asynccontextmanager
    async def atool_call(self, tool: str, *, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        """`tool_call` for a coroutine: it waits without blocking its event loop."""
        heard = _OffLoop.of(on_wait)
        async with _aholding(self.tool_gates(tool), heard):
            await _heard(heard)
            yield

    @asynccontextmanager
    async def amodel_call(
        self, provider: str, *, tokens: int = 0, on_wait: OnWait | None = None
    ) -> AsyncIterator[None]:
        """`model_call` for a coroutine: it waits without blocking its event loop."""
        heard = _OffLoop.of(on_wait)
        async with _aholding(self.model_gates(provider), heard):
            delay = self._rate_delay(provider, tokens, heard)
            if delay > 0:
                await self.asleep(delay)
            await _heard(heard)
            yield

    def settle_tokens(self, provider: str, *, estimated: int, actual: int) -> None:
        """Replace a model call's estimated token count with the one it reported."""
        bucket = self.buckets.get(f"rate:{provider}:tokens")
        if bucket is not None:
            bucket.adjust(float(estimated - actual))


@contextmanager
def _holding(gates: Sequence[Gate], on_wait: OnWait | None) -> Iterator[None]:
    with ExitStack() as stack:
        for gate in gates:
            stack.enter_context(gate.hold(on_wait=on_wait))
        yield


@asynccontextmanager
async def _aholding(gates: Sequence[Gate], on_wait: OnWait | None) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for gate in gates:
            await stack.enter_async_context(gate.ahold(on_wait=on_wait))
        yield


class _OffLoop:
    """An `on_wait` for the event loop: each event goes to the caller's callback in a
    worker thread, after the events before it (a chain of tasks, one per event)."""

    def __init__(self, on_wait: OnWait) -> None:
        self.on_wait = on_wait
        self.last: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # referenced until done

    @classmethod
    def of(cls, on_wait: OnWait | None) -> _OffLoop | None:
        return None if on_wait is None else cls(on_wait)

    def __call__(self, event: WaitEvent) -> None:
        self.last = asyncio.create_task(self._send(self.last, event))
        self.tasks.add(self.last)
        self.last.add_done_callback(self.tasks.discard)

    async def _send(self, before: asyncio.Task[None] | None, event: WaitEvent) -> None:
        if before is not None:
            await before
        await asyncio.to_thread(self.on_wait, event)


async def _heard(heard: _OffLoop | None) -> None:
    """Wait until the callback has heard every event so far (its error is the caller's)."""
    if heard is not None and heard.last is not None:
        await heard.last
