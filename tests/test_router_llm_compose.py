"""The LLM router on the offline scripted model, composition with fallback, the ladder."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import FAST_PRICE, Scripted, thread
from langchain_core.messages import HumanMessage
from test_router_data import synthetic

from tierflow import Rule, RulesRouter, Scenario, ScriptedChatModel, Turn
from tierflow.errors import SpecError
from tierflow.models.price import expected_cost
from tierflow.routing import (
    ComposedRouter,
    LLMRouter,
    Strategy,
    TierCost,
    next_stronger,
)
from tierflow.routing.offline import Target, train_learned_router
from tierflow.routing.router import RouteDecision

CHOICES = {"fast": "lookups and short factual answers", "reasoning": "multi-step problems"}


def choosing(*scenarios: tuple[str, dict[str, Any] | None, str]) -> ScriptedChatModel:
    """A classifier model: for a request containing MATCH, call RouteChoice with ARGS
    (or, with None, answer in plain text, which is no choice at all)."""
    played = []
    for match, args, text in scenarios:
        turn = Turn(calls=(("RouteChoice", args),)) if args is not None else Turn(text=text)
        played.append(Scenario(match=match, turns=(turn,)))
    return ScriptedChatModel(scenarios=tuple(played), model_name="classifier")


def llm_router(model: ScriptedChatModel, **fields: Any) -> LLMRouter:
    return LLMRouter(model=model, choices=CHOICES, fallback="fast", **fields)


def test_the_model_chooses_the_tier_with_structured_output() -> None:
    model = choosing(
        (
            "integral",
            {"tier": "reasoning", "confidence": 0.9, "reason": "calculus", "effort": "high"},
            "",
        ),
        ("capital", {"tier": "fast", "confidence": 0.8, "reason": "a fact", "effort": "high"}, ""),
    )
    router = llm_router(model, effort_tiers=("reasoning",))
    hard = router.route("Compute the integral of x dx", {})
    assert hard == RouteDecision(
        tier="reasoning", router="llm", reason="calculus", confidence=0.9, effort="high"
    )
    easy = router.route("What is the capital of France?", {})
    assert easy == RouteDecision(tier="fast", router="llm", reason="a fact", confidence=0.8)
    assert router.tiers() == {"fast", "reasoning"}


def test_the_classifier_sees_the_tiers_and_the_request() -> None:
    router = llm_router(choosing(("", {"tier": "fast", "confidence": 1, "reason": "ok"}, "")))
    prompt = router.prompt()
    assert "- fast: lookups and short factual answers" in prompt
    assert "- reasoning: multi-step problems" in prompt
    assert "reasoning effort" not in prompt


@pytest.mark.parametrize(
    ("args", "text", "why"),
    [
        ({"tier": "huge", "confidence": 0.99, "reason": "big"}, "", "unknown tier 'huge'"),
        ({"tier": "fast", "confidence": 7, "reason": "sure"}, "", "no valid choice"),
        (None, "I think the fast tier.", "no valid choice"),
    ],
)
def test_an_unusable_reply_is_an_unsure_fallback(
    args: dict[str, Any] | None, text: str, why: str
) -> None:
    router = llm_router(choosing(("", args, text)))
    decision = router.route("anything", {})
    assert decision["tier"] == "fast"
    assert decision["confidence"] == 0.0
    assert why in decision["reason"] and decision["reason"].endswith("fallback")


def test_llm_router_spec_errors_and_json() -> None:
    with pytest.raises(SpecError, match="effort_tiers"):
        llm_router(choosing(), effort_tiers=("huge",))
    dumped = llm_router(choosing(), costs={"fast": TierCost(price=FAST_PRICE)}).model_dump(
        mode="json"
    )
    assert dumped["model_name"] == "classifier"
    assert "model" not in dumped
    assert dumped["choices"] == CHOICES


class Fixed:
    """A plain (non-pydantic) router that always says the same thing."""

    def __init__(self, tier: str, confidence: float, name: str = "fixed") -> None:
        self.name, self.tier, self.confidence = name, tier, confidence
        self.calls = 0

    def tiers(self) -> set[str]:
        return {self.tier}

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        self.calls += 1
        return RouteDecision(
            tier=self.tier, router=self.name, reason="fixed", confidence=self.confidence
        )


def test_first_confident_strategy_wins_and_later_ones_are_not_asked() -> None:
    unsure, sure, never = (
        Fixed("reasoning", 0.4, "unsure"),
        Fixed("fast", 0.9, "sure"),
        Fixed("reasoning", 1.0),
    )
    composed = ComposedRouter(
        strategies=(
            Strategy(router=unsure, min_confidence=0.5),
            Strategy(router=sure, min_confidence=0.8),
            Strategy(router=never),
        ),
        default="reasoning",
    )
    decision = composed.route("hello", {})
    assert decision["tier"] == "fast"
    assert decision["router"] == "composed/sure"
    assert decision["reason"] == "fixed (confidence 0.90 >= 0.80)"
    assert decision["confidence"] == 0.9
    assert (unsure.calls, sure.calls, never.calls) == (1, 1, 0)


def test_no_confident_strategy_falls_back_to_the_default() -> None:
    composed = ComposedRouter(
        strategies=(
            Strategy(router=Fixed("reasoning", 0.4, "a"), min_confidence=0.5),
            Strategy(router=Fixed("reasoning", 0.7, "b"), min_confidence=0.8),
        ),
        default="fast",
        costs={"fast": TierCost(price=FAST_PRICE, output_tokens=100)},
    )
    decision = composed.route("hello there", {})
    assert decision["tier"] == "fast"
    assert decision["router"] == "composed"
    assert decision["confidence"] == 0.0
    assert "a said reasoning at 0.40 < 0.50" in decision["reason"]
    assert "b said reasoning at 0.70 < 0.80" in decision["reason"]
    assert decision["expected_cost_usd"] == pytest.approx(expected_cost(FAST_PRICE, 11 / 4, 0, 100))
    assert composed.tiers() == {"fast", "reasoning"}


def test_strategies_must_be_routers() -> None:
    with pytest.raises(SpecError, match="route"):
        Strategy(router=object())
    with pytest.raises(SpecError, match="at least one"):
        ComposedRouter(strategies=(), default="fast")


def test_rules_then_learned_then_llm_in_a_compiled_graph(
    scripted_agent: Callable[..., Scripted],
) -> None:
    learned, _ = train_learned_router(synthetic(), Target(share=0.5), folds=3)
    classifier = choosing(("", {"tier": "reasoning", "confidence": 0.95, "reason": "hard"}, ""))
    composed = ComposedRouter(
        strategies=(
            Strategy(
                router=RulesRouter(
                    rules=(Rule(tier="reasoning", keywords=("refund",)),), default="fast"
                ),
                min_confidence=1.0,
            ),
            Strategy(router=learned, min_confidence=0.99),
            Strategy(router=llm_router(classifier), min_confidence=0.9),
        ),
        default="fast",
    )
    scripted = scripted_agent(
        [Turn(text="fast answer")], reasoning_turns=[Turn(text="careful answer")], router=composed
    )
    graph = scripted.graph()
    values = graph.invoke({"messages": [HumanMessage("Tell me something new")]}, thread())
    # The rules router is always sure (confidence 1), so it decides first.
    assert values["route"]["router"] == "composed/rules"
    assert values["route"]["tier"] == "fast"
    document = json.loads(scripted.agent.to_json())
    classes = [s["router"]["class"] for s in document["router"]["strategies"]]
    assert classes == ["RulesRouter", "LearnedRouter", "LLMRouter"]
    assert document["router"]["strategies"][1]["router"]["model_sha256"] == learned.model_sha256
    assert document["router"]["strategies"][2]["router"]["model_name"] == "classifier"

    without_rules = composed.model_copy(update={"strategies": composed.strategies[1:]})
    decision = without_rules.route("Tell me something new", {})
    # An unfamiliar request is not far from the learned threshold: the LLM decides.
    assert decision["router"] == "composed/llm"
    assert decision["tier"] == "reasoning"


def test_next_stronger_tier() -> None:
    declared = ("nano", "fast", "reasoning")
    assert next_stronger("fast", declared) == "reasoning"
    assert next_stronger("reasoning", declared) is None
    assert next_stronger("nano", declared) == "fast"
    assert next_stronger("huge", declared) is None
