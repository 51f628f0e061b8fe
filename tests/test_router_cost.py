"""The LLM router's classification is a costed model call of the run (`tier="router"`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import FAST_PRICE, Scripted, thread
from langchain_core.messages import HumanMessage

from tierflow import Price, Rule, RulesRouter, Scenario, ScriptedChatModel, Turn
from tierflow.errors import SpecError
from tierflow.governance import Budgets, Policy, Principal, audit, principal_key
from tierflow.models.price import TokenUsage
from tierflow.routing import ComposedRouter, LLMRouter, Strategy
from tierflow.routing.router import router_calls
from tierflow.runs.runner import Runner

CHOICES = {"fast": "lookups", "reasoning": "multi-step problems"}
USAGE = TokenUsage(input_tokens=1200, cached_tokens=200, output_tokens=30, reasoning_tokens=0)
ROUTER_PRICE = Price(input=0.40, cached_input=0.10, output=1.60)


def classifier(tier: str = "reasoning") -> ScriptedChatModel:
    args = {"tier": tier, "confidence": 0.9, "reason": "needs steps"}
    turn = Turn(calls=(("RouteChoice", args),), usage=USAGE)
    return ScriptedChatModel(scenarios=(Scenario(match="", turns=(turn,)),), model_name="cls")


def test_the_classification_is_recorded_as_a_router_call_at_its_price(
    scripted_agent: Callable[..., Scripted],
) -> None:
    router = LLMRouter(model=classifier(), choices=CHOICES, fallback="fast", price=ROUTER_PRICE)
    scripted = scripted_agent([Turn(text="fast")], reasoning_turns=[Turn(text="42")], router=router)
    values = scripted.graph().invoke({"messages": [HumanMessage("Plan a trip")]}, thread())
    assert values["route"]["tier"] == "reasoning"
    calls = values["calls"]
    assert [c["tier"] for c in calls] == ["router", "reasoning"]
    routed = calls[0]
    assert routed["model"] == "cls"
    assert routed["usage"] == USAGE
    assert routed["step"] == 0
    assert routed["tool_calls"] == []
    assert routed["price_source"] == "declared"
    # 1000 uncached input, 200 cached, 30 output at the router's (not a tier's) price.
    assert routed["cost_usd"] == pytest.approx((1000 * 0.40 + 200 * 0.10 + 30 * 1.60) / 1e6)
    assert "route" not in values["routes"][0]  # the decision itself is unchanged
    assert set(values["routes"][0]) == {"tier", "router", "reason", "confidence"}


def test_a_chat_model_without_a_price_is_recorded_unpriced() -> None:
    router = LLMRouter(model=classifier("fast"), choices=CHOICES, fallback="fast")
    with router_calls() as made:
        router.route("What is 2 + 2?", {})
    assert len(made) == 1
    assert made[0]["usage"] == USAGE
    assert made[0]["cost_usd"] == 0.0
    assert made[0]["price_source"] == "unpriced"


def test_a_composed_router_reports_its_llm_strategy_call() -> None:
    llm = LLMRouter(model=classifier(), choices=CHOICES, fallback="fast", price=FAST_PRICE)
    rules = RulesRouter(rules=(Rule(tier="fast", keywords=("capital",)),), default="fast")
    composed = ComposedRouter(
        strategies=(Strategy(router=rules, min_confidence=1.0), Strategy(router=llm)),
        default="fast",
    )
    with router_calls() as made:
        composed.route("What is the capital of France?", {})
    assert made == []  # the rules are always sure: no classification
    without_rules = composed.model_copy(update={"strategies": composed.strategies[1:]})
    with router_calls() as made:
        without_rules.route("Prove it", {})
    assert [call["router"] for call in made] == ["llm"]
    assert made[0]["cost_usd"] == FAST_PRICE.cost(USAGE)


def test_a_router_that_calls_no_model_records_no_call(
    scripted_agent: Callable[..., Scripted],
) -> None:
    router = RulesRouter(rules=(Rule(tier="reasoning", keywords=("plan",)),), default="fast")
    scripted = scripted_agent([Turn(text="fast")], reasoning_turns=[Turn(text="42")], router=router)
    values = scripted.graph().invoke({"messages": [HumanMessage("Plan a trip")]}, thread())
    assert [c["tier"] for c in values["calls"]] == ["reasoning"]


def test_a_reference_is_priced_from_the_table_or_must_declare_one() -> None:
    router = LLMRouter(model="openai:gpt-4.1-mini", choices=CHOICES, fallback="fast")
    assert router.price is not None
    assert router.price.origin.startswith("genai-prices")
    with pytest.raises(SpecError, match=r"router\.price"):
        LLMRouter(model="openai:no-such-model-xyz", choices=CHOICES, fallback="fast")
    declared = LLMRouter(
        model="openai:no-such-model-xyz", choices=CHOICES, fallback="fast", price=ROUTER_PRICE
    )
    assert declared.price == ROUTER_PRICE


def test_a_governed_run_settles_the_router_call_on_the_ledger(
    scripted_agent: Callable[..., Scripted], db: str
) -> None:
    router = LLMRouter(model=classifier(), choices=CHOICES, fallback="fast", price=ROUTER_PRICE)
    scripted = scripted_agent(
        [Turn(text="fast")],
        reasoning_turns=[Turn(text="42")],
        router=router,
        policy=Policy(max_output_tokens=64),
    )
    runner = Runner(scripted.agent, db=db, principal=Principal(id="acme"))
    report = runner.run("Plan a trip", "t")
    assert report.status == "done"
    assert [call["tier"] for call in report.steps] == ["router", "reasoning"]
    ledger = Budgets(db).ledger(principal_key("acme"))
    assert {row["state"] for row in ledger} == {"settled"}
    assert sum(row["usd"] for row in ledger) == pytest.approx(
        sum(call["cost_usd"] for call in report.steps)
    )
    models = [e["name"] for e in audit(db, "t") if e["kind"] == "model"]
    assert "cls" in models
