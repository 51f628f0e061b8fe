"""Concurrency caps (threads, coroutines, both at once) and token-bucket rate limits on
a fake clock. Concurrency is measured by counting inside the tool; nothing sleeps and
nothing is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from tierflow.errors import SpecError
from tierflow.governance.gate import Gate, GateTimeout, WaitEvent
from tierflow.governance.limits import CallLimits, Capacity, RateLimit, TokenBucket

CALLS = 100
CAP = 4
SAFETY_S = 30.0  # only against a hang: a broken gate fails the assertions, not this


class Occupancy:
    """Counts the calls inside a tool at once; `go` lets the held calls finish."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inside = 0
        self.peak = 0
        self.done = 0
        self.waiting_events: list[WaitEvent] = []
        self.go = threading.Event()

    def enter(self) -> None:
        with self.cond:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.cond.notify_all()

    def leave(self) -> None:
        with self.cond:
            self.inside -= 1
            self.done += 1
            self.cond.notify_all()

    def on_wait(self, event: WaitEvent) -> None:
        with self.cond:
            self.waiting_events.append(event)
            self.cond.notify_all()

    def waiting(self) -> int:
        return sum(1 for e in self.waiting_events if e.phase == "waiting")

    def until(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout=SAFETY_S), "gave up waiting"


def saturate_then_release(occupancy: Occupancy, gate: Gate) -> None:
    """Wait until CAP calls are inside and all others queue, check, then let all run."""
    occupancy.until(lambda: occupancy.inside == CAP and occupancy.waiting() == CALLS - CAP)
    assert gate.in_use == CAP
    assert gate.waiting == CALLS - CAP
    occupancy.go.set()


def test_a_cap_of_four_holds_for_a_hundred_threads() -> None:
    capacity = Capacity(CallLimits(per_tool={"lookup": CAP}))
    occupancy = Occupancy()

    def tool_call() -> None:
        with capacity.tool_call("lookup", on_wait=occupancy.on_wait):
            occupancy.enter()
            occupancy.go.wait(SAFETY_S)
            occupancy.leave()

    threads = [threading.Thread(target=tool_call) for _ in range(CALLS)]
    for thread in threads:
        thread.start()
    saturate_then_release(occupancy, capacity.gates["tool:lookup"])
    for thread in threads:
        thread.join()
    assert occupancy.peak == CAP
    assert occupancy.done == CALLS
    gate = capacity.gates["tool:lookup"]
    assert (gate.in_use, gate.waiting, gate.peak, gate.waits) == (0, 0, CAP, CALLS - CAP)
    acquired = [e for e in occupancy.waiting_events if e.phase == "acquired"]
    assert len(acquired) == CALLS - CAP
    assert all(e.gate == "tool:lookup" and e.kind == "concurrency" for e in acquired)


def test_a_cap_of_four_holds_for_a_hundred_coroutines() -> None:
    capacity = Capacity(CallLimits(per_tool={"lookup": CAP}))
    occupancy = Occupancy()

    async def main() -> None:
        go = asyncio.Event()

        async def tool_call() -> None:
            async with capacity.atool_call("lookup", on_wait=occupancy.on_wait):
                occupancy.enter()
                await go.wait()
                occupancy.leave()

        tasks = [asyncio.create_task(tool_call()) for _ in range(CALLS)]
        while not (occupancy.inside == CAP and occupancy.waiting() == CALLS - CAP):
            await asyncio.sleep(0)  # yields to the tasks; no wall-clock time involved
        assert capacity.gates["tool:lookup"].waiting == CALLS - CAP
        go.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert occupancy.peak == CAP
    assert occupancy.done == CALLS


def test_threads_and_coroutines_share_one_cap() -> None:
    """`act`'s sync path (threads) and async path (the loop) count against one gate."""
    gate = Gate("tool:lookup", CAP)
    occupancy = Occupancy()
    half = CALLS // 2

    def in_thread() -> None:
        with gate.hold(on_wait=occupancy.on_wait):
            occupancy.enter()
            occupancy.go.wait(SAFETY_S)
            occupancy.leave()

    async def in_loop() -> None:
        async def one() -> None:
            async with gate.ahold(on_wait=occupancy.on_wait):
                occupancy.enter()
                await asyncio.to_thread(occupancy.go.wait, SAFETY_S)
                occupancy.leave()

        await asyncio.gather(*(one() for _ in range(half)))

    threads = [threading.Thread(target=in_thread) for _ in range(half)]
    threads.append(threading.Thread(target=asyncio.run, args=(in_loop(),)))
    for thread in threads:
        thread.start()
    saturate_then_release(occupancy, gate)
    for thread in threads:
        thread.join()
    assert occupancy.peak == CAP
    assert occupancy.done == CALLS


def test_specific_then_global_caps() -> None:
    """A global cap of 2 over two tools with caps of their own: never more than 2."""
    capacity = Capacity(CallLimits(tools=2, per_tool={"a": 2, "b": 1}))
    assert [g.name for g in capacity.tool_gates("a")] == ["tool:a", "tools"]
    assert [g.name for g in capacity.tool_gates("unlisted")] == ["tools"]
    with capacity.tool_call("a"), capacity.tool_call("b"):
        assert capacity.gates["tools"].in_use == 2
        with pytest.raises(GateTimeout):
            capacity.gates["tools"].acquire(timeout=0)
    assert capacity.gates["tools"].in_use == 0


def test_no_limits_means_no_gates() -> None:
    capacity = Capacity()
    with capacity.tool_call("anything"), capacity.model_call("openai", tokens=10):
        pass
    assert capacity.gates == {}


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    gate = Gate("models", 1)

    async def main() -> None:
        await gate.aacquire()
        waiter = asyncio.create_task(gate.aacquire())
        await asyncio.sleep(0)
        assert gate.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.waiting == 0
        gate.release()
        assert gate.in_use == 0

    asyncio.run(main())


def test_a_slot_handed_to_a_cancelled_waiter_is_not_lost() -> None:
    gate = Gate("models", 1)

    async def main() -> None:
        await gate.aacquire()
        waiter = asyncio.create_task(gate.aacquire())
        await asyncio.sleep(0)
        gate.release()  # handed over to the waiter, which hasn't run yet …
        waiter.cancel()  # … and is cancelled before it does
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.in_use == 0
        await gate.aacquire()  # the slot is free again
        assert gate.in_use == 1

    asyncio.run(main())


def test_a_timed_out_thread_leaves_the_queue() -> None:
    gate = Gate("tools", 1)
    gate.acquire()
    with pytest.raises(GateTimeout, match="no free slot at tools"):
        gate.acquire(timeout=0)
    assert gate.waiting == 0
    gate.release()
    with pytest.raises(RuntimeError, match="released more often"):
        gate.release()


def test_caps_are_validated_when_declared() -> None:
    with pytest.raises(SpecError, match="per_tool"):
        CallLimits(per_tool={"refund": 0})
    with pytest.raises(SpecError, match="tools"):
        CallLimits(tools=0)


# --- rate limits on a fake clock -------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_a_bucket_lets_a_minute_through_then_paces() -> None:
    time = FakeTime()
    bucket = TokenBucket("rate:openai:requests", per_minute=60, clock=time.clock)
    assert [bucket.take(1) for _ in range(60)] == [0.0] * 60
    assert bucket.take(1) == pytest.approx(1.0)  # one request a second from now on
    assert bucket.take(1) == pytest.approx(2.0)  # reserved behind the previous one
    time.now += 2.0
    assert bucket.level == pytest.approx(0.0)


def test_a_request_bigger_than_the_bucket_waits_in_proportion() -> None:
    time = FakeTime()
    bucket = TokenBucket("rate:openai:tokens", per_minute=1_000, clock=time.clock)
    assert bucket.take(1_300) == pytest.approx(18.0)  # 300 tokens of debt at 1000/min


def test_model_calls_wait_for_the_rate_and_report_it() -> None:
    time = FakeTime()
    limits = CallLimits(rates={"openai": RateLimit(requests_per_minute=2, tokens_per_minute=600)})
    capacity = Capacity(limits, clock=time.clock, sleep=time.sleep)
    events: list[WaitEvent] = []
    for _ in range(3):
        with capacity.model_call("openai", tokens=100, on_wait=events.append):
            pass
    assert time.slept == [pytest.approx(30.0)]  # the third request: 2 a minute
    assert [(e.gate, e.kind, e.phase) for e in events] == [
        ("rate:openai:requests", "rate", "waiting")
    ]
    assert events[0].delay_s == pytest.approx(30.0)


def test_tokens_settle_to_what_the_call_reported() -> None:
    time = FakeTime()
    limits = CallLimits(rates={"openai": RateLimit(tokens_per_minute=1_000)})
    capacity = Capacity(limits, clock=time.clock, sleep=time.sleep)
    with capacity.model_call("openai", tokens=900):
        pass
    capacity.settle_tokens("openai", estimated=900, actual=200)
    assert capacity.buckets["rate:openai:tokens"].level == pytest.approx(800)
    with capacity.model_call("openai", tokens=800):
        pass
    assert time.slept == []


def test_async_model_calls_sleep_through_the_injected_sleep() -> None:
    time = FakeTime()
    limits = CallLimits(models=1, rates={"openai": RateLimit(requests_per_minute=1)})
    capacity = Capacity(limits, clock=time.clock, asleep=time.asleep)

    async def main() -> None:
        for _ in range(2):
            async with capacity.amodel_call("openai"):
                assert capacity.gates["models"].in_use == 1

    asyncio.run(main())
    assert time.slept == [pytest.approx(60.0)]
