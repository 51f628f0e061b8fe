"""Scripted agents for the workflow tests: two tiers each, models that record what they
were sent, and the same replies whatever the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conftest import FAST_PRICE, REASONING_PRICE, RecordingChatModel

from tierflow import Agent, Scenario, Tier, Turn


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
