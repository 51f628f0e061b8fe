"""A test agent whose answers go to a human reviewer when they shout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, Verdict
from tierflow.guardrails import GuardrailBase


class NoShouting(GuardrailBase):
    kind = "no_shouting"

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        if candidate == candidate.lower():
            return Verdict(ok=True, reason="calm")
        return Verdict(ok=False, reason="the answer shouts")


SCRIPT = ScriptedChatModel(
    scenarios=(Scenario(match="status", turns=(Turn(text="Order 7 SHIPPED"),)),)
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="reviewed",
    instructions="Answer briefly.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    guardrails=(NoShouting(name="tone", on_fail="interrupt", refusal="Withheld by review."),),
)
