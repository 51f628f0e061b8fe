"""Scripted agents for the workflow tests: two tiers each, models that record what they
were sent, and the same replies whatever the request."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conftest import FAST_PRICE, REASONING_PRICE, RecordingChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from tierflow import Agent, Scenario, Tier, Turn
from tierflow.graphs.workflow import Workflow

REQUEST = {"messages": [HumanMessage("I was charged twice for order 7")]}
View = Mapping[str, Any]


@dataclass
class StepAgent:
    agent: Agent
    fast: RecordingChatModel
    reasoning: RecordingChatModel

    @property
    def calls(self) -> int:
        return len(self.fast.inputs) + len(self.reasoning.inputs)


def step_agent(name: str, *turns: Turn | str, **fields: Any) -> StepAgent:
    played = tuple(Turn(text=t) if isinstance(t, str) else t for t in turns)
    scenarios = (Scenario(match="", turns=played),)
    fast = RecordingChatModel(scenarios=scenarios, model_name="fast-model")
    reasoning = RecordingChatModel(scenarios=scenarios, model_name="reasoning-model")
    agent = Agent(
        name=name,
        instructions=f"You are the {name} agent.",
        tiers=(
            Tier(name="fast", model=fast, price=FAST_PRICE),
            Tier(name="reasoning", model=reasoning, price=REASONING_PRICE),
        ),
        **fields,
    )
    return StepAgent(agent, fast, reasoning)


def config() -> RunnableConfig:
    return {"configurable": {"thread_id": f"wf-{uuid.uuid4().hex}"}}


def run(workflow: Workflow, cfg: RunnableConfig | None = None) -> dict[str, Any]:
    """`workflow` run to its end (or first pause) in memory, on `REQUEST`."""
    graph = workflow.compile(checkpointer=InMemorySaver())
    values: dict[str, Any] = graph.invoke(REQUEST, cfg or config())
    return values


def statuses(values: Mapping[str, Any]) -> dict[str, str]:
    """Each step's status in the run's plan."""
    return {item["step"]: item["status"] for item in values["plan"]}


def constant(value: Any) -> Any:
    """A step function that returns `value`, whatever it reads."""

    def fn(view: View) -> Any:
        return value

    return fn
