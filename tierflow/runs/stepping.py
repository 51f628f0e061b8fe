"""How a run is streamed, written once and driven in a thread or on an event loop.

`Runner` writes a run as a generator: it sets the run up (the store, the thread's lease,
the checks, the run resources), yields what to stream, receives the last state the
streaming held (or the exception it raised) and records how the run ended, closing what
it opened. `drive` streams in the caller's thread; `adrive` on the caller's event loop,
with the generator's own parts — which block on the run store — in a worker thread.

Each of those parts runs to its end even when the awaiting task is cancelled meanwhile
(the cancellation is raised after it), so a cancelled run still records that it
stopped and releases its lease: it stays resumable, as after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import Command, StreamMode

    from tierflow.nodes.context import RunContext

    # What a run yields to stream: the graph, its input, its config and run context.
    Streamed = tuple[
        CompiledStateGraph[Any, Any, Any, Any],
        dict[str, Any] | Command[Any] | None,
        RunnableConfig,
        RunContext,
    ]

S = TypeVar("S")  # what a run yields to stream
R = TypeVar("R")  # what it returns
T = TypeVar("T")
Final = Mapping[str, Any] | None  # the last state the streaming held (None: no step ran)
OnUpdate = Callable[[str, Mapping[str, Any]], None]
# `(mode, chunk)` of LangGraph's "messages" (model tokens) and "custom" (retries) modes.
OnStream = Callable[[str, Any], None]


@dataclass(frozen=True)
class Streaming:
    """Streams a run with `durability="sync"` (a checkpoint is written before the next
    step starts), passing each node's update to `on_update` and, when given, model
    tokens and retries to `on_stream`; the run's last state as held in memory."""

    on_update: OnUpdate | None
    on_stream: OnStream | None

    def stream(self, streamed: Streamed) -> Final:
        graph, payload, config, context = streamed
        final: Final = None
        chunks = graph.stream(
            payload, config, context=context, stream_mode=self.modes(), durability="sync"
        )
        for mode, chunk in chunks:
            final = self.heard(mode, chunk, final)
        return final

    async def astream(self, streamed: Streamed) -> Final:
        graph, payload, config, context = streamed
        final: Final = None
        chunks = graph.astream(
            payload, config, context=context, stream_mode=self.modes(), durability="sync"
        )
        async for mode, chunk in chunks:
            final = self.heard(mode, chunk, final)
        return final

    def modes(self) -> list[StreamMode]:
        modes: list[StreamMode] = ["updates", "values"]
        return [*modes, "messages", "custom"] if self.on_stream is not None else modes

    def heard(self, mode: str, chunk: Any, final: Final) -> Final:
        """One chunk passed to the callbacks; the run's last state so far."""
        if mode == "values" and isinstance(chunk, Mapping):
            return chunk
        if mode == "updates" and isinstance(chunk, Mapping):
            for node, update in chunk.items():
                if self.on_update is not None and isinstance(update, Mapping):
                    self.on_update(node, update)
        elif mode != "values" and self.on_stream is not None:
            self.on_stream(mode, chunk)
        return final


def drive(steps: Generator[S, Final, R], stream: Callable[[S], Final]) -> R:
    """Run `steps`, streaming what it yields with `stream`, in this thread."""
    streamed = next(steps)
    try:
        final = stream(streamed)
    except BaseException as error:  # noqa: BLE001 — thrown into the run, which re-raises
        return _resumed(steps, error=error)
    return _resumed(steps, final=final)


async def adrive(steps: Generator[S, Final, R], astream: Callable[[S], Awaitable[Final]]) -> R:
    """Run `steps` on this event loop: its parts in a worker thread, the streaming
    with `astream`."""
    try:
        streamed = await _to_the_end(partial(next, steps))
        final = await astream(streamed)
    except BaseException as error:  # cancellation included
        if inspect.getgeneratorstate(steps) != inspect.GEN_SUSPENDED:
            raise  # the set-up failed: nothing is held
        return await _to_the_end(partial(_resumed, steps, error=error))
    return await _to_the_end(partial(_resumed, steps, final=final))


def _resumed(
    steps: Generator[S, Final, R], *, final: Final = None, error: BaseException | None = None
) -> R:
    """The streaming's outcome sent into `steps`; what the run returns (or raises)."""
    try:
        if error is not None:
            steps.throw(error)
        else:
            steps.send(final)
    except StopIteration as stopped:
        result: R = stopped.value
        return result
    raise RuntimeError("a run yields once")


async def _to_the_end(call: Callable[[], T]) -> T:
    """`call()` in a worker thread. A caller cancelled meanwhile waits for it to end
    (its outcome is dropped), then is cancelled."""
    done = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait([done])
        if not done.cancelled():
            done.exception()  # retrieved: the cancellation is what the caller sees
        raise
