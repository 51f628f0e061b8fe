"""A test agent for batches (tests/test_batch.py). A request with "ticket" takes three
model turns — look the ticket up; file it (a side effect, once per thread) while `hold`
waits; answer — and one with "quick ticket" two: file it, answer.

- The model counts the calls in flight at once (`TRACKER.peak`). With `$BATCH_BARRIER=N`,
  the first N calls wait until N are in flight together (or fail after 30 s), so a
  test knows N calls overlapped without timing anything.
- `file_ticket` writes one row per thread to the SQLite file `$BATCH_EFFECTS`, keeping
  its result by the call's idempotency key in the same transaction (`KeyedResults`):
  a call that runs again after an interruption finds it and writes nothing.
- `hold` returns at once, unless `$BATCH_GATE` names a file that does not exist: then
  it prints BATCH_HOLD, sets `HOLDING` and waits until it is cancelled (Ctrl-C).

`agent` has no policy; `governed` caps model calls at 2 at once (`CallLimits`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, ToolContext, Turn, tool
from tierflow.governance import CallLimits, Policy
from tierflow.tools import KeyedResults

BARRIER_TIMEOUT_S = 30.0


class Tracker:
    """Model calls in flight now, the most there have been, and the barrier."""

    def __init__(self, barrier: int) -> None:
        self.barrier = barrier
        self.in_flight = 0
        self.peak = 0
        self.calls = 0
        self.met = False
        self.also: Callable[[], bool] = lambda: True  # a test's further condition

    @contextmanager
    def held(self) -> Iterator[None]:
        self.in_flight += 1
        self.calls += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1

    async def meet(self) -> None:
        """The first `barrier` calls wait until that many are in flight together and
        `also()` holds (looked at every millisecond: other threads may change it)."""
        if self.calls > self.barrier:
            return
        async with asyncio.timeout(BARRIER_TIMEOUT_S):
            while not self.met:
                self.met = self.in_flight >= self.barrier and self.also()
                if not self.met:
                    await asyncio.sleep(0.001)


TRACKER = Tracker(int(os.environ.get("BATCH_BARRIER", "0")))


class CountingModel(ScriptedChatModel):
    """The scripted model, counting its async calls in flight (`TRACKER`)."""

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with TRACKER.held():
            await TRACKER.meet()
            return await super()._agenerate(messages, stop, run_manager, **kwargs)


@tool
async def look_up() -> str:
    """Look the ticket up."""
    await asyncio.sleep(0)
    return "a ticket about a late parcel"


EFFECTS = "CREATE TABLE IF NOT EXISTS effects (thread TEXT NOT NULL, key TEXT NOT NULL)"


@tool(side_effects=True)
def file_ticket(call: ToolContext) -> dict[str, str]:
    """File the ticket (once per thread)."""
    path = os.environ.get("BATCH_EFFECTS")
    if not path:
        return {"filed": call.thread_id}
    with closing(sqlite3.connect(path, timeout=30)) as conn, conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(EFFECTS)
        results = KeyedResults(conn)
        earlier = results.first(call.idempotency_key)
        if earlier is not None:
            return dict(earlier)
        conn.execute("INSERT INTO effects VALUES (?, ?)", (call.thread_id, call.idempotency_key))
        done = {"filed": call.thread_id}
        results.remember(call.idempotency_key, done)
        return done


HOLDING = asyncio.Event()


@tool
async def hold() -> str:
    """Wait for the desk to be free."""
    gate = os.environ.get("BATCH_GATE")
    if gate and not Path(gate).exists():
        sys.stdout.write("BATCH_HOLD\n")
        sys.stdout.flush()
        HOLDING.set()
        await asyncio.Event().wait()  # until cancelled
    return "the desk is free"


SCRIPT = CountingModel(
    scenarios=(
        Scenario(
            match="quick ticket",
            turns=(Turn(calls=(("file_ticket", {}),)), Turn(text="Ticket filed.")),
        ),
        Scenario(
            match="ticket",
            turns=(
                Turn(calls=(("look_up", {}),)),
                Turn(calls=(("file_ticket", {}), ("hold", {}))),
                Turn(text="Ticket filed."),
            ),
        ),
    ),
    latency_s=0.002,
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="batch_desk",
    instructions="File support tickets.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(look_up, file_ticket, hold),
    plan_tool=False,
)
governed = agent.model_copy(update={"policy": Policy(limits=CallLimits(models=2))})
