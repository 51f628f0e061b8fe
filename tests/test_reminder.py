"""The persistence reminder: last in every model input, never in the stored history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from tierflow import Limits, Turn, tool
from tierflow.graphs import build_graph

OBJECTIVE = "refund order 7 and tell the customer"


@tool
def lookup(order_id: int) -> str:
    """Look up an order."""
    return f"order {order_id}: delivered"


def plan(*steps: tuple[str, str]) -> dict[str, Any]:
    return {"steps": [{"step": step, "status": status} for step, status in steps]}


TURNS = (
    Turn(calls=(("update_plan", plan(("look up", "in_progress"), ("refund", "pending"))),)),
    Turn(calls=(("lookup", {"order_id": 7}),)),
    Turn(calls=(("update_plan", plan(("look up", "done"), ("refund", "in_progress"))),)),
    Turn(text="Refunded."),
)


@pytest.fixture
def planner(scripted_agent: Callable[..., Scripted]) -> Scripted:
    return scripted_agent(TURNS, tools=(lookup,), limits=Limits(max_steps=9))


def reminder_of(model_input: list[BaseMessage]) -> str:
    last = model_input[-1]
    assert isinstance(last, SystemMessage)
    return str(last.content)


def has_reminder(message: BaseMessage) -> bool:
    return "Reminder" in message.text or "Objective:" in message.text


def test_every_model_call_ends_with_the_current_reminder(planner: Scripted) -> None:
    planner.graph().invoke({"messages": [HumanMessage(OBJECTIVE)]}, thread())
    reminders = [reminder_of(seen) for seen in planner.fast.inputs]
    assert len(reminders) == 4
    for number, text in enumerate(reminders):
        assert f"Objective: {OBJECTIVE}" in text
        assert f"Progress: {number} of 9 model steps used." in text

    assert "Plan: none yet" in reminders[0]
    for text in reminders[1:3]:
        assert "  1. [~] look up\n  2. [ ] refund" in text
    assert "  1. [x] look up\n  2. [~] refund" in reminders[3]

    for seen in planner.fast.inputs:
        # Instructions first, the reminder last, and nowhere else.
        assert isinstance(seen[0], SystemMessage) and seen[0].text.startswith("You are")
        assert [has_reminder(m) for m in seen[:-1]] == [False] * (len(seen) - 1)


def test_reminder_is_not_stored_in_history_or_checkpoints(planner: Scripted) -> None:
    graph = planner.graph()
    config = thread()
    values = graph.invoke({"messages": [HumanMessage(OBJECTIVE)]}, config)
    assert values["plan"] == plan(("look up", "done"), ("refund", "in_progress"))["steps"]

    stored = graph.get_state(config).values["messages"]
    assert len(stored) == 8  # request, 4 model turns, 3 tool results
    assert not any(has_reminder(m) for m in stored)
    assert not any(isinstance(m, SystemMessage) for m in stored)

    history = list(graph.get_state_history(config))
    assert len(history) == 10  # input, START, route, then model and act per turn
    for snapshot in history:
        assert not any(has_reminder(m) for m in snapshot.values.get("messages", []))


def test_reminder_is_rebuilt_after_a_resume(planner: Scripted) -> None:
    saver = InMemorySaver()
    config = thread("resumed")
    # Stop before the third model call, as if the process died there.
    paused = build_graph(planner.agent).compile(checkpointer=saver, interrupt_before=["model.fast"])
    paused.invoke({"messages": [HumanMessage(OBJECTIVE)]}, config)
    paused.invoke(None, config)
    paused.invoke(None, config)
    assert paused.get_state(config).next == ("model.fast",)
    assert len(planner.fast.inputs) == 2

    # A freshly compiled graph on the same store picks the run up.
    values = planner.agent.compile(checkpointer=saver).invoke(None, config)
    assert values["status"] == "done"
    assert len(planner.fast.inputs) == 4
    resumed = reminder_of(planner.fast.inputs[2])
    assert f"Objective: {OBJECTIVE}" in resumed
    assert "  1. [~] look up\n  2. [ ] refund" in resumed
    assert "Progress: 2 of 9 model steps used." in resumed
