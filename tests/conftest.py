"""Shared helpers: a scripted model that records its inputs, and an agent factory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn

FAST_PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING_PRICE = Price(input=1.75, cached_input=0.175, output=14.00)


class RecordingChatModel(ScriptedChatModel):
    """A scripted model that keeps a copy of the messages of every call it serves.

    The list lives on the instance, so each test sees only its own calls."""

    inputs: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.inputs.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


@dataclass
class Scripted:
    agent: Agent
    fast: RecordingChatModel
    reasoning: RecordingChatModel

    def graph(self) -> Any:
        return self.agent.compile(checkpointer=InMemorySaver())


@pytest.fixture
def scripted_agent() -> Callable[..., Scripted]:
    """`scripted_agent(turns, reasoning_turns=None, **agent_fields)`: a two-tier agent
    (`fast`, `reasoning`) whose tiers replay `turns` (the reasoning tier replays
    `reasoning_turns` when given) and record what they were sent."""

    def make(
        turns: Sequence[Turn] = (),
        *,
        scenarios: Sequence[Scenario] | None = None,
        reasoning_turns: Sequence[Turn] | None = None,
        **fields: Any,
    ) -> Scripted:
        played = tuple(scenarios) if scenarios else (Scenario(match="", turns=tuple(turns)),)
        fast = RecordingChatModel(scenarios=played, model_name="fast-model")
        if reasoning_turns is not None:
            played = (Scenario(match="", turns=tuple(reasoning_turns)),)
        reasoning = RecordingChatModel(scenarios=played, model_name="reasoning-model")
        fields.setdefault("name", "test_agent")
        fields.setdefault("instructions", "You are a careful assistant.")
        agent = Agent(
            tiers=(
                Tier(name="fast", model=fast, price=FAST_PRICE),
                Tier(name="reasoning", model=reasoning, price=REASONING_PRICE),
            ),
            **fields,
        )
        return Scripted(agent=agent, fast=fast, reasoning=reasoning)

    return make


def thread(thread_id: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}
