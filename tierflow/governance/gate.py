"""A counting gate that threads and event loops share: the concurrency cap's mechanism.

`act` runs sync tools in threads and async tools on the event loop, and both kinds of
call must count against one cap. A `threading.Semaphore` would block the loop; an
`asyncio.Semaphore` can't be used from other threads. `Gate` is one counter under a
`threading.Lock` (held only for a few instructions, never across a wait) with one FIFO
queue of waiters of either kind: a thread waits on its own `threading.Event`, a
coroutine on a future of its own loop, woken with `call_soon_threadsafe`.

A released slot is handed straight to the first waiter (the count doesn't drop and
rise again), so a newcomer can't overtake a waiter, and the count can never exceed the
capacity, whoever releases from whichever thread.

Waiting is observable: `on_wait` gets a `WaitEvent` when a caller starts waiting and
when it gets its slot, and the gate keeps counters (`in_use`, `waiting`, `peak`,
`waits`) the runner can show as a run state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WaitEvent:
    """A caller started waiting at a gate, or got through it after waiting.

    `kind` is `concurrency` (no free slot) or `rate` (a rate limit's bucket is empty;
    `delay_s` says for how long). `waited_s` is set when `phase` is `acquired`."""

    gate: str
    kind: Literal["concurrency", "rate"]
    phase: Literal["waiting", "acquired"]
    queued: int = 0  # callers waiting at this gate, this one included
    delay_s: float | None = None
    waited_s: float | None = None


OnWait = Callable[[WaitEvent], None]


class GateTimeout(TimeoutError):
    """No slot came free within the caller's timeout."""


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None = None,
        future: asyncio.Future[None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.event = event
        self.future = future
        self.loop = loop
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Gate:
    """At most `capacity` holders at once, for threads and coroutines alike."""

    def __init__(
        self, name: str, capacity: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1:
            raise ValueError(f"gate {name!r}: capacity must be at least 1, not {capacity}")
        self.name = name
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._in_use = 0
        self._peak = 0
        self._waits = 0

    # -- counters ------------------------------------------------------------------

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def peak(self) -> int:
        """The most holders there have ever been at once."""
        return self._peak

    @property
    def waits(self) -> int:
        """How many callers had to wait, in all."""
        return self._waits

    # -- taking and giving back a slot --------------------------------------------------

    def _take_now(self) -> bool:
        """Under the lock: take a slot if one is free and nobody queues before us."""
        if self._in_use < self.capacity and not self._queue:
            self._in_use += 1
            self._peak = max(self._peak, self._in_use)
            return True
        return False

    def _enqueue(self, waiter: _Waiter) -> int:
        self._queue.append(waiter)
        self._waits += 1
        return len(self._queue)

    def acquire(self, *, on_wait: OnWait | None = None, timeout: float | None = None) -> None:
        """Take a slot, blocking this thread until one is free (`GateTimeout` after
        `timeout` seconds, if given)."""
        with self._lock:
            if self._take_now():
                return
            waiter = _Waiter(event=threading.Event())
            queued = self._enqueue(waiter)
        started = self._notify_waiting(on_wait, queued)
        assert waiter.event is not None
        if not waiter.event.wait(timeout):
            with self._lock:
                if not waiter.granted:  # a release may have granted it just now
                    self._queue.remove(waiter)
                    raise GateTimeout(f"no free slot at {self.name} within {timeout:g}s")
        self._notify_acquired(on_wait, started)

    async def aacquire(self, *, on_wait: OnWait | None = None) -> None:
        """Take a slot, suspending this coroutine (never blocking its loop) until one
        is free. Cancelling the wait gives up the place in the queue — or the slot, if
        it was handed over at that very moment."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._take_now():
                return
            waiter = _Waiter(future=loop.create_future(), loop=loop)
            queued = self._enqueue(waiter)
        started = self._notify_waiting(on_wait, queued)
        assert waiter.future is not None
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if waiter.granted:
                    self._release_locked()
                else:
                    self._queue.remove(waiter)
            raise
        self._notify_acquired(on_wait, started)

    def release(self) -> None:
        """Give a slot back: to the first waiter that can still take it, or free it."""
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if self._hand_over(waiter):
                return
        if self._in_use <= 0:
            raise RuntimeError(f"gate {self.name!r} released more often than acquired")
        self._in_use -= 1

    @staticmethod
    def _hand_over(waiter: _Waiter) -> bool:
        waiter.granted = True
        if waiter.event is not None:
            waiter.event.set()
            return True
        assert waiter.future is not None and waiter.loop is not None
        try:
            waiter.loop.call_soon_threadsafe(_wake, waiter.future)
        except RuntimeError:  # its loop is closed: that waiter will never run again
            waiter.granted = False
            return False
        return True

    @contextmanager
    def hold(
        self, *, on_wait: OnWait | None = None, timeout: float | None = None
    ) -> Iterator[None]:
        self.acquire(on_wait=on_wait, timeout=timeout)
        try:
            yield
        finally:
            self.release()

    @asynccontextmanager
    async def ahold(self, *, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        await self.aacquire(on_wait=on_wait)
        try:
            yield
        finally:
            self.release()

    # -- observing -------------------------------------------------------------------

    def _notify_waiting(self, on_wait: OnWait | None, queued: int) -> float:
        if on_wait is not None:
            on_wait(WaitEvent(self.name, "concurrency", "waiting", queued=queued))
        return self.clock()

    def _notify_acquired(self, on_wait: OnWait | None, started: float) -> None:
        if on_wait is not None:
            waited = max(0.0, self.clock() - started)
            on_wait(WaitEvent(self.name, "concurrency", "acquired", waited_s=waited))
