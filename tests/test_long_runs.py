"""Limits hold at any length: LangGraph's recursion limit follows from `Limits`."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from tierflow import Agent, Limits, Price, Scenario, ScriptedChatModel, Tier, Turn, tool
from tierflow.models.price import TokenUsage

pytestmark = pytest.mark.slow  # 3,000 model steps

STEPS = 3000
USAGE = TokenUsage(input_tokens=10, cached_tokens=0, output_tokens=2, reasoning_tokens=0)


@tool
def tick(n: int) -> str:
    """Count one step."""
    return f"tick {n}"


def long_agent(steps: int) -> Agent:
    """`steps - 1` tool turns, then the answer: exactly `steps` model steps."""
    turns = tuple(Turn(calls=(("tick", {"n": i}),), usage=USAGE) for i in range(steps - 1))
    script = ScriptedChatModel(
        scenarios=(Scenario(match="count", turns=(*turns, Turn(text="counted", usage=USAGE))),)
    )
    price = Price(input=1.0, cached_input=0.1, output=2.0)
    return Agent(
        name="long",
        instructions="Count.",
        tiers=(
            Tier(name="fast", model=script, price=price),
            Tier(name="reasoning", model=script, price=price),
        ),
        tools=(tick,),
        limits=Limits(max_steps=steps),
    )


# About 40 s alone on this 2-core machine (the history grows, and LangGraph's message
# reducer is linear in it); under a loaded `-n auto` run it needs more than the default.
@pytest.mark.timeout(600)
def test_a_run_of_3000_model_steps_finishes_done() -> None:
    graph = long_agent(STEPS).compile()
    state = graph.invoke({"messages": [HumanMessage("count to the end")]})
    assert (state["status"], state["answer"], state["steps"]) == ("done", "counted", STEPS)
