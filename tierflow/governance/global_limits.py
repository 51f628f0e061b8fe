"""Concurrency caps and rate limits shared by every process on one Postgres run store.

`Capacity` (`limits.py`) counts in one process's memory: two workers under a cap of 1
run two calls at once, and each spends the provider's whole rate. `GlobalCapacity` has
the same interface (`tool_call`, `atool_call`, `model_call`, `amodel_call`,
`settle_tokens`, `on_wait` events) and keeps its counts in the run store's Postgres
database (`global_tables.py`: the tables, the SQL, and why row locks rather than
advisory locks), so every worker process on every machine shares them. A `Runner` on a
`postgresql://` store uses it; on SQLite it keeps the per-process `Capacity` (a SQLite
store is one machine's file, and its write lock is too coarse to take per call).

**Slots are leased.** A call takes a slot of each of its gates (`tool:refund`, `tools`;
`provider:openai`, `models`), most specific first, through the process's local gate
first: a process's callers queue in order at home, and only as many as the cap ask the
database. A daemon thread renews the expiry of every slot the process holds every third
of `slot_ttl`; a process that dies stops renewing, and its slots are free again
`slot_ttl` after the last renewal. A caller that finds no slot it may take queues in the
database (stamped with when it first asked) and polls, with backoff and jitter from 10
ms to 100 ms; each poll keeps its place alive, and a slot goes only to a caller with
fewer live waiters ahead of it than there are free slots. Without the queue a busy
process would win every slot it gives back (its next call asks at once, a waiter
elsewhere a poll later) and starve the others. Gates are named by tool or provider, not
by agent: agents sharing a store share a gate, each counting only the slots below its
own cap — declare one cap per name.

**Rates are shared token buckets**, one row per (provider, requests | tokens). A model
call debits its provider's buckets in one short transaction and sleeps the wait the
debit computed, once: callers are served in the order they asked, and nobody polls.
A fleet paces rather than bursts: a bucket refills at `1 - headroom` of the declared
rate (default 90 %) and holds `burst_s` seconds of it (default 0.5 s). In any window of
W seconds the fleet's calls go ahead at most `(1 - headroom) * rate * (W + burst_s)`
times — within the limit's share for every window of 4.5 s and longer. The headroom is
for what happens between the go-ahead and the provider's clock (a scheduler's delay, a
connection's): bench/global_rate_limit.py measures a fleet's busiest 10-second window
at the provider's end. The per-process `Capacity` holds a minute's worth instead.

The async calls never block their event loop: every database statement runs in a
worker thread, and waits are `asleep`.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, Self

from tierflow.errors import CheckpointError
from tierflow.governance.gate import Gate, OnWait, WaitEvent
from tierflow.governance.global_tables import GlobalTables, Rate
from tierflow.governance.limits import (
    SECONDS_PER_MINUTE,
    CallLimits,
    Capacity,
    _heard,
    _OffLoop,
)
from tierflow.store import database
from tierflow.store.database import PostgresDatabase
from tierflow.store.targets import describe, is_postgres

SLOT_TTL_S = 15.0  # a slot not renewed for this long is free
HEADROOM = 0.1  # the share of a declared rate a fleet leaves unused
BURST_S = 0.5  # seconds of the (paced) rate a bucket holds
POLL_FIRST_S = 0.01
POLL_MAX_S = 0.1


class GlobalCapacity(Capacity):
    """The caps and rates of `limits`, shared through the Postgres run store at `db`
    (see the module's note). Its local gates stay in front of the database's: a
    process's callers queue in order at home, and only as many as the cap ask the
    database. Use it as a context manager to keep the store open between calls (a
    `Runner` keeps it open while a run lasts)."""

    def __init__(
        self,
        limits: CallLimits | None = None,
        *,
        db: str,
        slot_ttl: float = SLOT_TTL_S,
        headroom: float = HEADROOM,
        burst_s: float = BURST_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not is_postgres(db):
            raise ValueError(f"global limits need a postgresql:// run store, not {db!r}")
        if not 0 <= headroom < 1 or burst_s < 0 or slot_ttl <= 0:
            raise ValueError("headroom must be in [0, 1), burst_s >= 0 and slot_ttl > 0")
        super().__init__(limits, clock=clock, sleep=sleep, asleep=asleep)
        self.buckets = {}  # the rates live in the database
        self.db = db
        self.slot_ttl = slot_ttl
        rates: dict[str, Rate] = {}
        for provider, rate in self.limits.rates.items():
            for kind, per_minute in (
                ("requests", rate.requests_per_minute),
                ("tokens", rate.tokens_per_minute),
            ):
                if per_minute is not None:
                    per_s = per_minute / SECONDS_PER_MINUTE * (1 - headroom)
                    rates[f"rate:{provider}:{kind}"] = Rate(per_s, per_s * burst_s)
        caps = {name: gate.capacity for name, gate in self.gates.items()}
        self.tables = GlobalTables(db, gates=caps, rates=rates, slot_ttl=slot_ttl)
        self.renewer = _Renewer(self.tables.renew, every=slot_ttl / 3)
        self._random = random.Random()
        self._held: PostgresDatabase | None = None

    def __enter__(self) -> Self:
        found = database.acquire(self.db)
        assert isinstance(found, PostgresDatabase)
        self._held = found
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def settle_tokens(self, provider: str, *, estimated: int, actual: int) -> None:
        """Replace a model call's estimated token count with the one it reported."""
        name = f"rate:{provider}:tokens"
        if name in self.tables.rates and estimated != actual:
            self.tables.credit(name, float(estimated - actual))

    def _take(self, provider: str, tokens: int) -> list[tuple[str, float]]:
        """Debit the provider's buckets; (bucket, seconds to wait) for each."""
        wanted = [(f"rate:{provider}:requests", 1.0), (f"rate:{provider}:tokens", float(tokens))]
        return self.tables.take([(n, a) for n, a in wanted if n in self.tables.rates and a > 0])

    # -- waiting ----------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        delay = min(POLL_MAX_S, POLL_FIRST_S * 2.0 ** min(attempt, 16))
        return delay * self._random.uniform(0.5, 1.0)

    def _acquire(self, gate: Gate, on_wait: OnWait | None) -> str:
        token = uuid.uuid4().hex
        attempt, started = 0, None
        try:
            while not self.tables.claim(gate.name, token):
                if started is None:
                    started = _waiting(gate, on_wait, self.clock)
                self.sleep(self._backoff(attempt))
                attempt += 1
        except BaseException:
            self.tables.unqueue(token)
            raise
        self.renewer.add(token)
        _acquired(gate, on_wait, started, self.clock)
        return token

    async def _aacquire(self, gate: Gate, on_wait: OnWait | None) -> str:
        token = uuid.uuid4().hex
        attempt, started = 0, None
        try:
            while not await asyncio.to_thread(self.tables.claim, gate.name, token):
                if started is None:
                    started = _waiting(gate, on_wait, self.clock)
                await self.asleep(self._backoff(attempt))
                attempt += 1
        except BaseException:  # cancelled, say: give the place in the queue up
            await asyncio.to_thread(self.tables.unqueue, token)
            raise
        self.renewer.add(token)
        _acquired(gate, on_wait, started, self.clock)
        return token

    @contextmanager
    def _slot(self, gate: Gate, on_wait: OnWait | None) -> Iterator[None]:
        with gate.hold(on_wait=on_wait):
            token = self._acquire(gate, on_wait)
            try:
                yield
            finally:
                self.renewer.remove(token)
                self.tables.free(token)

    @asynccontextmanager
    async def _aslot(self, gate: Gate, on_wait: OnWait | None) -> AsyncIterator[None]:
        async with gate.ahold(on_wait=on_wait):
            token = await self._aacquire(gate, on_wait)
            try:
                yield
            finally:
                self.renewer.remove(token)
                await asyncio.to_thread(self.tables.free, token)

    def _rate_delay(self, provider: str, tokens: int, on_wait: OnWait | None) -> float:
        return _reported(self._take(provider, tokens), on_wait)

    # -- the calls --------------------------------------------------------------------

    @contextmanager
    def tool_call(self, tool: str, *, on_wait: OnWait | None = None) -> Iterator[None]:
        """Hold the slots one call of `tool` needs, across every process on the store."""
        with ExitStack() as stack:
            for gate in self.tool_gates(tool):
                stack.enter_context(self._slot(gate, on_wait))
            yield

    @contextmanager
    def model_call(
        self, provider: str, *, tokens: int = 0, on_wait: OnWait | None = None
    ) -> Iterator[None]:
        """Hold a model call's slots, then wait out its provider's shared rates."""
        with ExitStack() as stack:
            for gate in self.model_gates(provider):
                stack.enter_context(self._slot(gate, on_wait))
            delay = self._rate_delay(provider, tokens, on_wait)
            if delay > 0:
                self.sleep(delay)
            yield

    @asynccontextmanager
    async def atool_call(self, tool: str, *, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        """`tool_call` for a coroutine: it waits without blocking its event loop."""
        heard = _OffLoop.of(on_wait)
        async with AsyncExitStack() as stack:
            for gate in self.tool_gates(tool):
                await stack.enter_async_context(self._aslot(gate, heard))
            await _heard(heard)
            yield

    @asynccontextmanager
    async def amodel_call(
        self, provider: str, *, tokens: int = 0, on_wait: OnWait | None = None
    ) -> AsyncIterator[None]:
        """`model_call` for a coroutine: it waits without blocking its event loop."""
        heard = _OffLoop.of(on_wait)
        async with AsyncExitStack() as stack:
            for gate in self.model_gates(provider):
                await stack.enter_async_context(self._aslot(gate, heard))
            waits = await asyncio.to_thread(self._take, provider, tokens)
            delay = _reported(waits, heard)
            if delay > 0:
                await self.asleep(delay)
            await _heard(heard)
            yield

    def __repr__(self) -> str:
        return f"GlobalCapacity({describe(self.db)})"


def _waiting(gate: Gate, on_wait: OnWait | None, clock: Callable[[], float]) -> float:
    if on_wait is not None:
        on_wait(WaitEvent(gate.name, "concurrency", "waiting"))
    return clock()


def _acquired(
    gate: Gate, on_wait: OnWait | None, started: float | None, clock: Callable[[], float]
) -> None:
    if on_wait is not None and started is not None:
        waited = max(0.0, clock() - started)
        on_wait(WaitEvent(gate.name, "concurrency", "acquired", waited_s=waited))


def _reported(waits: list[tuple[str, float]], on_wait: OnWait | None) -> float:
    """Tell `on_wait` of every bucket that makes the call wait; the longest wait."""
    for name, wait in waits:
        if wait > 0 and on_wait is not None:
            on_wait(WaitEvent(name, "rate", "waiting", delay_s=wait))
    return max((wait for _, wait in waits), default=0.0)


class _Renewer:
    """Renews the process's held slots every `every` seconds from a daemon thread,
    which runs while any slot is held (a store that is away is tried again next time)."""

    def __init__(self, renew: Callable[[list[str]], None], *, every: float) -> None:
        self.renew = renew
        self.every = every
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._thread: threading.Thread | None = None

    def add(self, token: str) -> None:
        with self._lock:
            self._held.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._keep, name="tierflow-slot-renewer", daemon=True
                )
                self._thread.start()

    def remove(self, token: str) -> None:
        with self._lock:
            self._held.discard(token)

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _keep(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                tokens = sorted(self._held)
                if not tokens:
                    self._thread = None
                    return
            try:
                self.renew(tokens)
            except CheckpointError:
                continue
