"""`Agent(...)` validates on construction; its JSON form is stable and diffable."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from tierflow import (
    Agent,
    Limits,
    OutputSchema,
    Price,
    Rule,
    RulesRouter,
    Scenario,
    ScriptedChatModel,
    SpecError,
    Tier,
    Turn,
    tool,
)

PRICE = Price(input=2.00, cached_input=0.50, output=8.00)


def two_tiers(**prices: Price) -> tuple[Tier, Tier]:
    return (
        Tier(name="fast", model="openai:gpt-4.1-mini", price=prices.get("fast", PRICE)),
        Tier(name="reasoning", model="openai:o4-mini", price=prices.get("reasoning", PRICE)),
    )


@tool
def lookup(order_id: int, verbose: bool = False) -> str:
    """Look up an order by id."""
    return str(order_id)


def agent(**fields: Any) -> Agent:
    fields.setdefault("name", "support")
    fields.setdefault("instructions", "Help.")
    fields.setdefault("tiers", two_tiers())
    return Agent(**fields)


def spec_error(build: Callable[[], object]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        build()
    return caught.value


# --- validation -------------------------------------------------------------------------


def test_fewer_than_two_tiers() -> None:
    error = spec_error(lambda: agent(tiers=two_tiers()[:1]))
    assert error.field == "tiers"
    assert "at least two tiers" in str(error)


def test_duplicate_tier_names() -> None:
    fast = two_tiers()[0]
    error = spec_error(lambda: agent(tiers=(fast, fast)))
    assert error.field == "tiers"
    assert "duplicate" in error.problem and "fast" in error.problem


def test_router_rule_to_unknown_tier() -> None:
    router = RulesRouter(default="fast", rules=(Rule(tier="huge", keywords=("why",)),))
    error = spec_error(lambda: agent(router=router))
    assert error.field == "router"
    assert "huge" in error.problem


def test_router_default_to_unknown_tier() -> None:
    error = spec_error(lambda: agent(router=RulesRouter(default="nano")))
    assert error.field == "router"
    assert "nano" in error.problem


def test_duplicate_tool_names() -> None:
    error = spec_error(lambda: agent(tools=(lookup, lookup)))
    assert error.field == "tools"
    assert "lookup" in error.problem


def test_update_plan_is_reserved_while_plan_tool_is_on() -> None:
    @tool(name="update_plan")
    def my_plan(text: str) -> str:
        """My own plan tool."""
        return text

    error = spec_error(lambda: agent(tools=(my_plan,)))
    assert error.field == "tools.update_plan"
    assert "built in" in error.problem
    # Without the built-in plan tool the name is free.
    assert agent(tools=(my_plan,), plan_tool=False).tools == (my_plan,)


def test_model_reference_without_provider() -> None:
    error = spec_error(lambda: Tier(name="fast", model="gpt-4.1", price=PRICE))
    assert error.field == "tier.model"
    assert "provider:model" in error.problem


def test_negative_price() -> None:
    error = spec_error(lambda: Price(input=-1, cached_input=0, output=1))
    assert error.field == "price.input"
    assert "greater than or equal to 0" in error.problem


def test_limits_must_be_positive() -> None:
    error = spec_error(lambda: Limits(max_steps=0))
    assert error.field == "limits.max_steps"


def test_rule_with_invalid_regex() -> None:
    error = spec_error(lambda: Rule(tier="fast", pattern="(unclosed"))
    assert error.field == "rule.pattern"
    assert "not a valid regular expression" in error.problem


def test_rule_without_condition() -> None:
    error = spec_error(lambda: Rule(tier="fast"))
    assert error.field == "rule"
    assert "keywords, a pattern or min_chars" in error.problem


def test_unknown_field_is_rejected() -> None:
    error = spec_error(lambda: agent(tier_count=3))
    assert error.field == "tier_count"


def test_guardrail_must_satisfy_the_protocol() -> None:
    class HalfGuard:
        name = "half"

        def check(self, candidate: str, context: object) -> bool:
            return True

    error = spec_error(lambda: agent(guardrails=(HalfGuard(),)))
    assert error.field == "guardrails.0"
    assert "check(candidate, context)" in error.problem


# --- tools: schema problems are found when the tool is declared --------------------------


def test_tool_parameter_without_annotation() -> None:
    def find(query):  # type: ignore[no-untyped-def]  # the missing annotation is the test
        """Find things."""

    error = spec_error(lambda: tool(find))
    assert error.field == "tools.find.query"
    assert "no type annotation" in error.problem


def test_tool_with_star_args() -> None:
    def find(*queries: str) -> None:
        """Find things."""

    error = spec_error(lambda: tool(find))
    assert error.field == "tools.find.queries"
    assert "*args" in error.problem


class Opaque:
    """A plain class: pydantic can't describe it in a JSON schema."""


def test_tool_argument_without_json_schema() -> None:
    def find(thing: Opaque) -> None:
        """Find things."""

    error = spec_error(lambda: tool(find))
    assert error.field == "tools.find"
    assert "JSON schema" in error.problem


def test_tool_without_docstring() -> None:
    def find(query: str) -> None:
        pass

    error = spec_error(lambda: tool(find))
    assert error.field == "tools.find"
    assert "description" in error.problem


def test_tool_with_non_positive_timeout() -> None:
    def find(query: str) -> None:
        """Find things."""

    error = spec_error(lambda: tool(timeout_s=0)(find))
    assert error.field.startswith("tools.")
    assert "timeout_s" in str(error)


# --- JSON form --------------------------------------------------------------------------


class Reply(BaseModel):
    answer: str


def full_agent(fast_price: Price = PRICE) -> Agent:
    router = RulesRouter(
        default="fast",
        rules=(Rule(tier="reasoning", keywords=("refund",), pattern=r"\bwhy\b"),),
    )
    return agent(
        tiers=two_tiers(
            fast=fast_price, reasoning=Price(input=1.75, cached_input=0.175, output=14)
        ),
        router=router,
        tools=(lookup,),
        guardrails=(OutputSchema(Reply),),
        limits=Limits(max_steps=7, max_tool_calls_per_turn=3),
    )


def test_to_json_is_valid_stable_and_complete() -> None:
    text = full_agent().to_json()
    assert text == full_agent().to_json()
    document = json.loads(text)
    assert [t["price"] for t in document["tiers"]] == [
        {"input": 2.0, "cached_input": 0.5, "output": 8.0},
        {"input": 1.75, "cached_input": 0.175, "output": 14.0},
    ]
    assert document["tiers"][0]["model"] == "openai:gpt-4.1-mini"
    (lookup_spec,) = document["tools"]
    parameters = lookup_spec["parameters"]
    assert parameters["properties"]["order_id"]["type"] == "integer"
    assert parameters["properties"]["verbose"]["type"] == "boolean"
    assert parameters["required"] == ["order_id"]
    assert document["router"]["default"] == "fast"
    assert document["router"]["rules"][0]["tier"] == "reasoning"
    assert document["router"]["rules"][0]["keywords"] == ["refund"]
    assert document["router"]["rules"][0]["pattern"] == r"\bwhy\b"
    assert document["limits"] == {"max_steps": 7, "max_tool_calls_per_turn": 3}
    assert document["guardrails"][0]["name"] == "schema"
    assert document["plan_tool"] is True


def test_to_json_diff_shows_exactly_the_changed_price() -> None:
    before = full_agent().to_json().splitlines()
    after = full_agent(Price(input=2.5, cached_input=0.5, output=8)).to_json().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert [(line[0], line[1:].strip()) for line in changed] == [
        ("-", '"input": 2.0,'),
        ("+", '"input": 2.5,'),
    ]


def test_to_json_describes_a_chat_model_object() -> None:
    model = ScriptedChatModel(
        scenarios=(Scenario(match="", turns=(Turn(text="hi"),)),), model_name="replay"
    )
    spec = agent(tiers=(Tier(name="fast", model=model, price=PRICE), two_tiers()[1])).to_json()
    assert json.loads(spec)["tiers"][0]["model"] == {
        "class": "ScriptedChatModel",
        "model_name": "replay",
    }


# --- with_models ------------------------------------------------------------------------


def test_with_models_swaps_one_tier_and_keeps_prices() -> None:
    original = full_agent()
    swapped = original.with_models(reasoning="openai:gpt-5")
    assert swapped.tier("reasoning").model == "openai:gpt-5"
    assert swapped.tier("reasoning").price == original.tier("reasoning").price
    assert swapped.tier("fast") == original.tier("fast")
    assert original.tier("reasoning").model == "openai:o4-mini"  # the original is unchanged


def test_with_models_unknown_tier() -> None:
    error = spec_error(lambda: full_agent().with_models(huge="openai:gpt-5"))
    assert error.field == "tiers"
    assert "huge" in error.problem


def test_with_models_checks_the_new_reference() -> None:
    error = spec_error(lambda: full_agent().with_models(fast="gpt-5"))
    assert error.field == "tier.model"


def test_tool_name_must_be_one_a_provider_accepts() -> None:
    def find(query: str) -> None:
        """Find things."""

    error = spec_error(lambda: tool(name="find things!")(find))
    assert error.field == "tools.find things!.name"
    assert "pattern" in error.problem
