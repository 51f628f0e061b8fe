"""Where tool code runs: reusable daemon threads, and one event loop for async tools.

A tool call that times out is abandoned, never stopped (a thread can't be cancelled),
so whatever runs tools must let go of a call that never returns: neither the run nor
the process may wait for it. Hence daemon threads, reused:

- `WORKERS` runs sync tools (under `invoke` and `ainvoke`) and, under `invoke`, the
  other calls of a turn while the node's thread runs its first. A worker is taken when
  one is idle, else started; an idle one ends after `IDLE_S`. Nothing caps their
  number: a stuck call holds its worker, and the next call gets another.
  (`concurrent.futures.ThreadPoolExecutor` joins its threads at exit and caps them.)
- `TOOL_LOOP` is the event loop async tools run on under `invoke`: one per process, in
  a daemon thread, so the async tools of a turn overlap on one loop and can share
  loop-bound clients with the turns before them. Under `ainvoke` they run on the
  caller's loop. An async tool that blocks (a sync call inside `async def`) holds up
  the loop it runs on — under `invoke`, the other async tools of the process; a caller
  still returns at the call's deadline (`call_in_time` waits from outside the loop).

Both start on first use and are rebuilt in a child after `fork()`. Calls keep the
caller's context variables. `call_in_time` runs a tool call within its deadline,
`acall_in_time` is its twin on the caller's loop; `run_all` runs a turn's calls
at once under `invoke`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from itertools import count
from typing import Any, TypeVar

T = TypeVar("T")
IDLE_S = 30.0  # an idle worker thread ends after this long without work

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class Workers(Executor):
    """Daemon threads that take work from one queue; more start when none is idle.

    An idle worker leaves a token in `_idle`; `submit` takes one (a worker will pick
    the work up) or starts a thread. Both queues are C-level: `submit` never blocks,
    even on an event loop, beyond starting a thread."""

    def __init__(self, name: str, idle_s: float = IDLE_S) -> None:
        self._name = name
        self._idle_s = idle_s
        self._numbers = count(1)
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the threads stay in the parent

    def _reset(self) -> None:
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._idle: queue.SimpleQueue[None] = queue.SimpleQueue()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((future, fn, args, kwargs))
        try:
            self._idle.get_nowait()
        except queue.Empty:
            name = f"{self._name}-{next(self._numbers)}"
            threading.Thread(target=self._serve, name=name, daemon=True).start()
        return future

    def _serve(self) -> None:
        work, idle = self._work, self._idle
        while True:
            try:
                future, fn, args, kwargs = work.get(timeout=self._idle_s)
            except queue.Empty:
                try:
                    idle.get_nowait()  # take back an idle token, and end
                except queue.Empty:
                    continue  # a submit took it, counting on this thread: serve it
                return
            if not future.set_running_or_notify_cancel():
                idle.put(None)
                continue
            # Idle again before the caller hears: its next call finds this thread.
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 — handed to the waiting caller
                idle.put(None)
                future.set_exception(error)
            else:
                idle.put(None)
                future.set_result(result)
                del result
            del future, fn, args, kwargs  # keep nothing of the call alive


class LoopThread:
    """An event loop running forever in a daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._loop = None

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._loop is None:
                    new = asyncio.new_event_loop()
                    thread = threading.Thread(target=new.run_forever, name=self._name, daemon=True)
                    thread.start()
                    self._loop = new
                loop = self._loop
        return loop


WORKERS = Workers("tierflow-tool")
TOOL_LOOP = LoopThread("tierflow-tool-loop")


def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
    """`fn(*args, **kwargs)` in a worker, in a copy of this thread's context variables."""
    return WORKERS.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def run_all(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Every job at once — the first in this thread, the others in workers — and their
    values, in order."""
    if not jobs:
        return []
    others = [in_thread(job) for job in jobs[1:]]
    first = jobs[0]()
    return [first, *(future.result() for future in others)]


def started(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Future[Any]:
    """Start `fn(**kwargs)`: a coroutine function on `TOOL_LOOP`, any other in a worker."""
    if inspect.iscoroutinefunction(fn):
        return asyncio.run_coroutine_threadsafe(fn(**kwargs), TOOL_LOOP.loop())
    return in_thread(fn, **kwargs)


def call_in_time(fn: Callable[..., Any], kwargs: Mapping[str, Any], timeout_s: float) -> Any:
    """`fn(**kwargs)`'s value, waited for at most `timeout_s` (then `TimeoutError`: a
    coroutine is cancelled, a thread abandoned)."""
    future = started(fn, kwargs)
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        future.cancel()
        raise


async def acall_in_time(fn: Callable[..., Any], kwargs: Mapping[str, Any], timeout_s: float) -> Any:
    """`call_in_time` on the running loop: a coroutine function runs on it, any other in
    a worker."""
    if inspect.iscoroutinefunction(fn):
        return await asyncio.wait_for(fn(**kwargs), timeout_s)
    return await asyncio.wait_for(asyncio.wrap_future(in_thread(fn, **kwargs)), timeout_s)
