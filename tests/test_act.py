"""The `act` node: concurrent tool calls, failures as observations, ToolContext."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.graph.state import CompiledStateGraph

from tierflow import Limits, Tool, ToolContext, Turn, tool
from tierflow.nodes.act import make_act_node
from tierflow.nodes.context import Governing

REQUEST = {"messages": [HumanMessage("do the work")]}


def run(
    graph: CompiledStateGraph[Any, Any, Any, Any], mode: str, config: RunnableConfig
) -> dict[str, Any]:
    values: dict[str, Any] = (
        asyncio.run(graph.ainvoke(REQUEST, config))
        if mode == "ainvoke"
        else graph.invoke(REQUEST, config)
    )
    return values


def tool_messages(values: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


# --- concurrency, shown by overlap --------------------------------------------------------


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_async_tools_of_one_turn_overlap(
    scripted_agent: Callable[..., Scripted], mode: str
) -> None:
    # Each tool waits at the barrier until the other arrives: run one after the other,
    # the first would time out (after 5 s) and its result would be an error.
    barrier = asyncio.Barrier(2)
    log: list[str] = []

    def meeting(name: str) -> Tool:
        async def meet() -> str:
            log.append(f"start {name}")
            await asyncio.wait_for(barrier.wait(), 5)
            log.append(f"end {name}")
            return f"{name} met"

        return tool(name=name, description=f"Meet as {name}.")(meet)

    scripted = scripted_agent(
        [Turn(calls=(("left", {}), ("right", {}))), Turn(text="done")],
        tools=(meeting("left"), meeting("right")),
    )
    values = run(scripted.graph(), mode, thread())
    assert [(m.status, m.content) for m in tool_messages(values)] == [
        ("success", "left met"),
        ("success", "right met"),
    ]
    assert sorted(log[:2]) == ["start left", "start right"]
    assert sorted(log[2:]) == ["end left", "end right"]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_sync_tools_of_one_turn_run_in_parallel_threads(
    scripted_agent: Callable[..., Scripted], mode: str
) -> None:
    barrier = threading.Barrier(2, timeout=5)
    log: list[str] = []

    def meeting(name: str) -> Tool:
        def meet() -> str:
            log.append(f"start {name}")
            barrier.wait()  # BrokenBarrierError if the other call never arrives
            log.append(f"end {name}")
            return f"{name} met"

        return tool(name=name, description=f"Meet as {name}.")(meet)

    scripted = scripted_agent(
        [Turn(calls=(("left", {}), ("right", {}))), Turn(text="done")],
        tools=(meeting("left"), meeting("right")),
    )
    values = run(scripted.graph(), mode, thread())
    assert [(m.status, m.content) for m in tool_messages(values)] == [
        ("success", "left met"),
        ("success", "right met"),
    ]
    assert sorted(log[:2]) == ["start left", "start right"]


def test_async_tools_under_invoke_share_one_event_loop_across_turns(
    scripted_agent: Callable[..., Scripted],
) -> None:
    # A loop-bound client (an asyncio.Lock here) made in one turn still works in the next.
    loops: list[asyncio.AbstractEventLoop] = []
    client: list[asyncio.Lock] = []

    @tool
    async def fetch(n: int) -> str:
        """Fetch a page."""
        loops.append(asyncio.get_running_loop())
        if not client:
            client.append(asyncio.Lock())
        async with client[0]:
            await asyncio.sleep(0)
        return f"page {n}"

    scripted = scripted_agent(
        [
            Turn(calls=(("fetch", {"n": 1}), ("fetch", {"n": 2}))),
            Turn(calls=(("fetch", {"n": 3}),)),
            Turn(text="done"),
        ],
        tools=(fetch,),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert [m.content for m in tool_messages(values)] == ["page 1", "page 2", "page 3"]
    assert len(loops) == 3 and len(set(map(id, loops))) == 1


def test_async_tools_under_ainvoke_run_on_the_callers_loop(
    scripted_agent: Callable[..., Scripted],
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @tool
    async def fetch(n: int) -> str:
        """Fetch a page."""
        loops.append(asyncio.get_running_loop())
        return f"page {n}"

    scripted = scripted_agent(
        [Turn(calls=(("fetch", {"n": 1}), ("fetch", {"n": 2}))), Turn(text="done")],
        tools=(fetch,),
    )
    graph = scripted.graph()

    async def main() -> asyncio.AbstractEventLoop:
        await graph.ainvoke(REQUEST, thread())
        return asyncio.get_running_loop()

    caller = asyncio.run(main())
    assert loops == [caller, caller]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_tool_calls_reuse_threads(
    scripted_agent: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    started: list[str] = []
    start = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    ran: list[str] = []

    @tool
    def note(n: int) -> str:
        """Note a number."""
        ran.append(threading.current_thread().name)
        return f"noted {n}"

    turns = [Turn(calls=(("note", {"n": n}),)) for n in range(20)]
    scripted = scripted_agent([*turns, Turn(text="ok")], tools=(note,))
    run(scripted.graph(), mode, thread())
    assert len(ran) == 20
    # Twenty calls, one after the other: at most one tool thread was started for them.
    assert len([name for name in started if name.startswith("tierflow-tool")]) <= 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_tools_run_in_the_context_of_the_node(
    scripted_agent: Callable[..., Scripted], mode: str
) -> None:
    # A tool reads the run's config (LangGraph's context variables), sync or async.
    @tool
    def where() -> str:
        """Which thread is this."""
        return str(get_config()["configurable"]["thread_id"])

    @tool
    async def awhere() -> str:
        """Which thread is this."""
        return str(get_config()["configurable"]["thread_id"])

    scripted = scripted_agent(
        [Turn(calls=(("where", {}), ("awhere", {}))), Turn(text="here")], tools=(where, awhere)
    )
    values = run(scripted.graph(), mode, thread("the-thread"))
    assert [m.content for m in tool_messages(values)] == ["the-thread", "the-thread"]


ABANDON = """
import asyncio, threading, time
from tierflow.nodes.executor import call_in_time

def stuck() -> None:
    threading.Event().wait()

async def blocks_its_loop() -> None:
    time.sleep(3600)

for fn in (stuck, blocks_its_loop):
    try:
        call_in_time(fn, {}, 0.05)
    except TimeoutError:
        print("timed out:", fn.__name__)
"""


@pytest.mark.slow
def test_the_process_exits_with_calls_still_stuck() -> None:
    # A timed-out call is abandoned, never joined: not by the run, not at exit.
    done = subprocess.run(
        [sys.executable, "-c", ABANDON], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["timed out: stuck", "timed out: blocks_its_loop"]


# --- failures become observations the next model call reads -----------------------------


@tool
def lookup(order_id: int) -> str:
    """Look up an order."""
    return f"order {order_id}"


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"backend down: {reason}")


def make_hang() -> Tool:
    never = asyncio.Event()  # nobody sets it: the call can only end by timing out

    async def hang() -> str:
        await never.wait()
        return "unreachable"

    return tool(name="hang", description="Waits forever.", timeout_s=0.05)(hang)


FAILURES = {
    "unknown tool": (("teleport", {"to": "mars"}), ["Unknown tool 'teleport'", "lookup"]),
    "wrong type": (
        ("lookup", {"order_id": "seven"}),
        ["Invalid arguments for lookup", "order_id", "valid integer"],
    ),
    "missing argument": (("lookup", {}), ["order_id", "Field required"]),
    "extra argument": (("lookup", {"order_id": 1, "rush": True}), ["rush", "not permitted"]),
    "exception": (("explode", {"reason": "disk"}), ["RuntimeError", "backend down: disk"]),
    "timeout": (("hang", {}), ["hang timed out after 0.05s"]),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failure_is_an_observation_for_the_next_model_call(
    scripted_agent: Callable[..., Scripted], kind: str
) -> None:
    call, expected = FAILURES[kind]
    scripted = scripted_agent(
        [Turn(calls=(call,)), Turn(text="sorry")], tools=(lookup, explode, make_hang())
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "done"  # the run carries on: nothing raised

    assert len(scripted.fast.inputs) == 2
    second = scripted.fast.inputs[1]
    tool_call_id = values["messages"][1].tool_calls[0]["id"]
    observed = [m for m in second if isinstance(m, ToolMessage)]
    assert len(observed) == 1
    assert observed[0].tool_call_id == tool_call_id
    assert observed[0].status == "error"
    assert isinstance(observed[0].content, str)
    assert observed[0].content.startswith("Error: ")
    for text in expected:
        assert text in observed[0].content


def test_calls_beyond_the_turn_limit_are_not_run(scripted_agent: Callable[..., Scripted]) -> None:
    ran: list[int] = []

    @tool
    def note(n: int) -> str:
        """Note a number."""
        ran.append(n)
        return f"noted {n}"

    calls = tuple(("note", {"n": n}) for n in range(3))
    scripted = scripted_agent(
        [Turn(calls=calls), Turn(text="ok")],
        tools=(note,),
        limits=Limits(max_tool_calls_per_turn=2),
    )
    scripted.graph().invoke(REQUEST, thread())
    assert sorted(ran) == [0, 1]
    observed = [m for m in scripted.fast.inputs[1] if isinstance(m, ToolMessage)]
    assert [(m.status, m.content) for m in observed[:2]] == [
        ("success", "noted 0"),
        ("success", "noted 1"),
    ]
    assert observed[2].status == "error"
    assert "Not run" in observed[2].content and "at most 2 tool calls" in observed[2].content


def test_malformed_json_arguments_become_an_observation() -> None:
    node = make_act_node([lookup], max_calls_per_turn=8, governing=Governing(None, "direct"))
    turn = AIMessage(
        content="",
        tool_calls=[{"name": "lookup", "args": {"order_id": 3}, "id": "good", "type": "tool_call"}],
        invalid_tool_calls=[
            invalid_tool_call(
                name="lookup", args='{"order_id": 3', id="bad", error="unterminated object"
            )
        ],
    )
    state = {"messages": [HumanMessage("x"), turn], "steps": 1}
    update = node.invoke(state, {"configurable": {"thread_id": "direct"}})
    messages = update["messages"]
    assert [(m.tool_call_id, m.status) for m in messages] == [("good", "success"), ("bad", "error")]
    assert messages[0].content == "order 3"
    assert "not valid JSON" in messages[1].content
    assert "unterminated object" in messages[1].content


# --- timeouts of sync tools -------------------------------------------------------------


@dataclass
class Blocker:
    """A sync tool that blocks until released (or 5 s pass), then reports whether it was."""

    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    waited: list[bool] = field(default_factory=list)

    def tool(self) -> Tool:
        def block() -> str:
            # True only if the test released us, which it does after the run returned.
            self.waited.append(self.release.wait(5))
            self.finished.set()
            return "late"

        return tool(name="block", description="Blocks.", timeout_s=0.05)(block)


def test_sync_tool_timeout_returns_under_ainvoke(scripted_agent: Callable[..., Scripted]) -> None:
    blocker = Blocker()
    scripted = scripted_agent(
        [Turn(calls=(("block", {}),)), Turn(text="ok")], tools=(blocker.tool(),)
    )
    graph = scripted.graph()

    async def main() -> dict[str, Any]:
        try:
            values: dict[str, Any] = await graph.ainvoke(REQUEST, thread())
            return values
        finally:
            blocker.release.set()  # let the abandoned thread finish

    values = asyncio.run(main())
    assert "block timed out after 0.05s" in tool_messages(values)[0].content
    assert blocker.finished.wait(5)
    assert blocker.waited == [True]  # the run returned while the tool was still blocked


def test_sync_tool_timeout_returns_under_invoke(scripted_agent: Callable[..., Scripted]) -> None:
    blocker = Blocker()
    scripted = scripted_agent(
        [Turn(calls=(("block", {}),)), Turn(text="ok")], tools=(blocker.tool(),)
    )
    try:
        values = scripted.graph().invoke(REQUEST, thread())
    finally:
        blocker.release.set()
    assert "block timed out after 0.05s" in tool_messages(values)[0].content
    assert blocker.finished.wait(5)
    assert blocker.waited == [True]  # invoke returned while the tool was still blocked


def test_invoke_from_inside_a_running_event_loop(scripted_agent: Callable[..., Scripted]) -> None:
    scripted = scripted_agent(
        [Turn(calls=(("lookup", {"order_id": 1}),)), Turn(text="found")], tools=(lookup,)
    )
    graph = scripted.graph()

    async def notebook_cell() -> dict[str, Any]:
        values: dict[str, Any] = graph.invoke(REQUEST, thread())
        return values

    outcome: dict[str, Any] = {}
    try:
        outcome["values"] = asyncio.run(notebook_cell())
    except RuntimeError as error:
        outcome["error"] = str(error)
    assert "error" not in outcome, outcome["error"]
    assert outcome["values"]["answer"] == "found"


# --- ToolContext ------------------------------------------------------------------------


def test_tool_context_and_idempotency_key(scripted_agent: Callable[..., Scripted]) -> None:
    seen: list[ToolContext] = []

    @tool(side_effects=True)
    def refund(order_id: int, ctx: ToolContext) -> str:
        """Refund an order."""
        seen.append(ctx)
        return f"refunded {order_id}"

    assert "ctx" not in refund.json_schema()["properties"]
    assert set(refund.openai_schema()["function"]["parameters"]["properties"]) == {"order_id"}

    turns = [
        Turn(calls=(("lookup", {"order_id": 1}),)),
        Turn(calls=(("refund", {"order_id": 1}), ("refund", {"order_id": 2}))),
        Turn(text="refunded"),
    ]
    scripted = scripted_agent(turns, tools=(lookup, refund))
    graph = scripted.graph()
    values = graph.invoke(REQUEST, thread("thread-a"))
    ids = [c["id"] for c in values["messages"][3].tool_calls]

    # A turn's calls run concurrently: the order they reach the tool is not the order asked.
    first, second = sorted(seen, key=lambda c: c.call_id)
    assert (first.thread_id, first.step, first.call_id) == ("thread-a", 2, ids[0])
    assert (second.thread_id, second.step, second.call_id) == ("thread-a", 2, ids[1])
    assert first.idempotency_key != second.idempotency_key

    # Re-running the act step from its checkpoint (what a resume does) finds the calls'
    # recorded outcomes under the same keys — without a policy too — and runs nothing.
    before_act = [h for h in graph.get_state_history(thread("thread-a")) if h.next == ("act",)]
    assert [h.values["steps"] for h in before_act] == [2, 1]
    replayed = graph.invoke(None, before_act[0].config)
    assert len(seen) == 2
    assert [m.content for m in replayed["messages"][4:6]] == ["refunded 1", "refunded 2"]

    # The same calls in another thread get other keys.
    graph.invoke(REQUEST, thread("thread-b"))
    other = sorted(seen[2:], key=lambda c: c.call_id)
    assert [c.thread_id for c in other] == ["thread-b", "thread-b"]
    assert [c.call_id for c in other] == [first.call_id, second.call_id]
    assert {c.idempotency_key for c in other}.isdisjoint(
        {first.idempotency_key, second.idempotency_key}
    )
