"""The ReAct loop end to end on the scripted model: tool turns, answer, routing, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from conftest import FAST_PRICE, REASONING_PRICE, Scripted, thread
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tierflow import Limits, Rule, RulesRouter, Turn, tool
from tierflow.models.price import TokenUsage


@tool
def lookup(order_id: int) -> dict[str, Any]:
    """Look up an order."""
    return {"id": order_id, "status": "shipped"}


@tool
def carrier(order_id: int) -> str:
    """The carrier of an order."""
    return "DHL"


DECLARED = TokenUsage(input_tokens=1000, cached_tokens=400, output_tokens=50, reasoning_tokens=0)

TURNS = (
    Turn(
        calls=(
            ("update_plan", {"steps": [{"step": "look up", "status": "in_progress"}]}),
            ("lookup", {"order_id": 7}),
        ),
        usage=DECLARED,
    ),
    Turn(calls=(("carrier", {"order_id": 7}),)),
    Turn(text="Order 7 has shipped with DHL."),
)


@pytest.fixture
def loop(scripted_agent: Callable[..., Scripted]) -> Scripted:
    return scripted_agent(TURNS, tools=(lookup, carrier))


def check_run(values: dict[str, Any]) -> None:
    messages = values["messages"]
    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
    ]
    first, second, final = messages[1], messages[4], messages[6]
    assert [c["name"] for c in first.tool_calls] == ["update_plan", "lookup"]
    assert [m.tool_call_id for m in messages[2:4]] == [c["id"] for c in first.tool_calls]
    assert messages[3].content == '{"id": 7, "status": "shipped"}'
    assert messages[5].tool_call_id == second.tool_calls[0]["id"]
    assert messages[5].content == "DHL"
    assert all(m.status == "success" for m in messages if isinstance(m, ToolMessage))
    assert final.content == "Order 7 has shipped with DHL." and not final.tool_calls

    assert values["status"] == "done"
    assert values["answer"] == "Order 7 has shipped with DHL."
    assert values["error"] is None
    assert values["plan"] == [{"step": "look up", "status": "in_progress"}]

    calls = values["calls"]
    assert [c["step"] for c in calls] == [1, 2, 3]
    assert [c["tier"] for c in calls] == ["fast"] * 3
    assert [c["model"] for c in calls] == ["fast-model"] * 3
    assert [c["tool_calls"] for c in calls] == [["update_plan", "lookup"], ["carrier"], []]
    assert [c["usage_source"] for c in calls] == ["declared", "estimated", "estimated"]
    assert calls[0]["usage"] == DECLARED
    # 600 uncached + 400 cached input, 50 output at the fast tier's price.
    assert calls[0]["cost_usd"] == pytest.approx((600 * 2.00 + 400 * 0.50 + 50 * 8.00) / 1e6)
    for call in calls[1:]:
        usage = call["usage"]
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert call["cost_usd"] == pytest.approx(FAST_PRICE.cost(usage))
        assert call["cost_usd"] > 0


def test_multi_step_loop(loop: Scripted) -> None:
    values = loop.graph().invoke({"messages": [HumanMessage("where is order 7?")]}, thread())
    check_run(values)
    assert len(loop.fast.inputs) == 3
    assert loop.reasoning.inputs == []


def test_multi_step_loop_async(loop: Scripted) -> None:
    graph = loop.graph()
    values = asyncio.run(graph.ainvoke({"messages": [HumanMessage("where is order 7?")]}, thread()))
    check_run(values)


def test_sync_and_async_runs_agree(scripted_agent: Callable[..., Scripted]) -> None:
    request = {"messages": [HumanMessage("where is order 7?", id="request-1")]}
    sync = scripted_agent(TURNS, tools=(lookup, carrier)).graph().invoke(request, thread())
    graph = scripted_agent(TURNS, tools=(lookup, carrier)).graph()
    async_ = asyncio.run(graph.ainvoke(request, thread()))
    for key in ("answer", "status", "plan", "calls", "steps"):
        assert sync[key] == async_[key], key
    assert [m.content for m in sync["messages"]] == [m.content for m in async_["messages"]]


# --- routing ----------------------------------------------------------------------------

ROUTER = RulesRouter(default="fast", rules=(Rule(tier="reasoning", keywords=("refund",)),))


def test_keyword_rule_routes_to_the_other_tier(scripted_agent: Callable[..., Scripted]) -> None:
    scripted = scripted_agent(
        [Turn(text="fast answer")], reasoning_turns=[Turn(text="careful answer")], router=ROUTER
    )
    graph = scripted.graph()
    updates = list(
        graph.stream(
            {"messages": [HumanMessage("I want a Refund for order 7")]},
            thread(),
            stream_mode="updates",
        )
    )
    assert [node for update in updates for node in update] == ["route", "model.reasoning"]
    values = graph.get_state(thread()).values
    assert values["route"]["tier"] == "reasoning"
    assert values["route"]["router"] == "rules"
    assert "'refund'" in values["route"]["reason"]
    assert values["answer"] == "careful answer"
    assert [c["tier"] for c in values["calls"]] == ["reasoning"]
    assert values["calls"][0]["cost_usd"] == pytest.approx(
        REASONING_PRICE.cost(values["calls"][0]["usage"])
    )
    assert scripted.fast.inputs == []


def test_next_request_in_the_thread_starts_fresh(scripted_agent: Callable[..., Scripted]) -> None:
    plan = {"steps": [{"step": "check", "status": "done"}]}
    scripted = scripted_agent(
        [Turn(calls=(("update_plan", plan),)), Turn(text="fast answer")],
        reasoning_turns=[Turn(text="careful answer")],
        router=ROUTER,
    )
    graph = scripted.graph()
    config = thread()
    first = graph.invoke({"messages": [HumanMessage("where is order 7?")]}, config)
    assert first["route"]["tier"] == "fast"
    assert first["plan"] == plan["steps"]
    assert first["steps"] == 2

    second = graph.invoke({"messages": [HumanMessage("refund order 7 please")]}, config)
    assert second["objective"] == "refund order 7 please"
    assert second["plan"] == []
    assert second["steps"] == 1
    assert second["route"]["tier"] == "reasoning"
    assert [r["tier"] for r in second["routes"]] == ["fast", "reasoning"]
    assert second["answer"] == "careful answer"
    assert [(c["tier"], c["step"]) for c in second["calls"]] == [
        ("fast", 1),
        ("fast", 2),
        ("reasoning", 1),
    ]
    # The history is kept: both requests and both answers.
    assert [m.content for m in second["messages"] if isinstance(m, HumanMessage)] == [
        "where is order 7?",
        "refund order 7 please",
    ]
    # The reasoning tier saw the whole history, and the new objective in its reminder.
    (seen,) = scripted.reasoning.inputs
    assert "Objective: refund order 7 please" in seen[-1].content
    assert "Progress: 0 of 20" in seen[-1].content


# --- limits -----------------------------------------------------------------------------


def test_step_limit_ends_the_run_as_failed(scripted_agent: Callable[..., Scripted]) -> None:
    forever = [Turn(calls=(("lookup", {"order_id": n}),)) for n in range(10)]
    scripted = scripted_agent(forever, tools=(lookup,), limits=Limits(max_steps=2))
    values = scripted.graph().invoke({"messages": [HumanMessage("loop")]}, thread())
    assert values["status"] == "failed"
    assert "step limit" in values["error"] and "2 model steps" in values["error"]
    assert values["answer"] is None
    assert values["steps"] == 2
    assert len(scripted.fast.inputs) == 2
    assert [c["step"] for c in values["calls"]] == [1, 2]
