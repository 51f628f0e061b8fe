"""Routed vs one tier for everything: the repricing behind the demo's cost story."""

from __future__ import annotations

import pytest
from rich.console import Console

from tierflow import Price
from tierflow.cli.costs import (
    assumptions,
    comparison_table,
    costlier,
    observed_reasoning,
    repriced,
    request_costs,
    versus,
    why_it_costs_more,
)
from tierflow.models.price import TokenUsage
from tierflow.nodes.state import ModelCall

FAST = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)
PRICES = {"fast": FAST, "reasoning": REASONING}


def call(tier: str, inputs: int, cached: int, output: int, reasoning: int = 0) -> ModelCall:
    usage = TokenUsage(
        input_tokens=inputs, cached_tokens=cached, output_tokens=output, reasoning_tokens=reasoning
    )
    return ModelCall(
        step=1,
        tier=tier,
        model="scripted",
        usage=usage,
        usage_source="estimated",
        cost_usd=PRICES.get(tier, FAST).cost(usage),  # the router's model: fast's price
        tool_calls=[],
    )


def test_a_call_keeps_its_own_cost_on_its_own_tier() -> None:
    mine = call("fast", 2_000, 1_024, 100)
    assert repriced(mine, "fast", FAST, observed_reasoning([mine], "fast")) == mine["cost_usd"]


def test_moving_a_call_onto_a_reasoning_tier_adds_the_reasoning_observed_there() -> None:
    easy = call("fast", 2_000, 1_024, 100)
    hard = call("reasoning", 3_000, 0, 700, reasoning=600)
    seen = observed_reasoning([easy, hard], "reasoning")
    assert (seen.per_call, seen.calls) == (600.0, 1)
    # 976 uncached + 1,024 cached input at the reasoning tier's prices; 100 visible + 600
    # reasoning output tokens.
    expected = (976 * 1.75 + 1_024 * 0.175 + 700 * 14.00) / 1e6
    assert repriced(easy, "reasoning", REASONING, seen) == pytest.approx(expected)


def test_moving_a_call_onto_a_tier_that_does_not_reason_drops_its_reasoning() -> None:
    hard = call("reasoning", 3_000, 0, 700, reasoning=600)
    seen = observed_reasoning([hard], "fast")
    assert (seen.per_call, seen.calls) == (0.0, 0)
    assert repriced(hard, "fast", FAST, seen) == pytest.approx((3_000 * 2.00 + 100 * 8.00) / 1e6)


def test_routing_an_easy_request_to_the_fast_tier_saves_against_all_reasoning() -> None:
    ran = [
        ("easy", [call("fast", 1_200, 0, 80), call("fast", 1_500, 1_152, 60)]),
        ("hard", [call("reasoning", 4_000, 0, 900, reasoning=800)]),
    ]
    easy, hard = request_costs(ran, PRICES)
    assert easy.tiers == ("fast",)
    assert easy.cached_share == pytest.approx(1_152 / 2_700)
    assert easy.routed < easy.on_tier["reasoning"]
    assert versus(easy, "reasoning").startswith("−")
    assert why_it_costs_more(easy, "reasoning", PRICES) is None
    assert hard.routed == hard.on_tier["reasoning"]
    assert versus(hard, "reasoning") == "on reasoning"
    assert costlier([easy, hard], "reasoning", PRICES) == []


def test_an_input_heavy_request_that_costs_more_routed_says_why() -> None:
    # No reasoning observed anywhere: the reasoning tier's cheaper input wins.
    ran = [
        ("lookup", [call("fast", 20_000, 0, 50)]),
        ("plan", [call("reasoning", 2_000, 0, 100)]),
    ]
    lookup, _ = request_costs(ran, PRICES)
    assert lookup.routed > lookup.on_tier["reasoning"]
    assert versus(lookup, "reasoning").startswith("+")
    costs = request_costs(ran, PRICES)
    assert costlier(costs, "reasoning", PRICES) == [
        "Request 1 cost more routed than on reasoning: reasoning reads input cheaper "
        "($1.75 vs $2.00/M) and this request is input-heavy."
    ]


def test_the_table_and_its_assumptions_are_printed() -> None:
    ran = [("easy", [call("fast", 1_200, 0, 80)])]
    console = Console(width=160, record=True)
    console.print(comparison_table(request_costs(ran, PRICES), "fast", "reasoning"))
    text = console.export_text()
    assert "all reasoning" in text and "vs reasoning" in text and "total" in text
    assert assumptions(ran[0][1], PRICES)[-1] == (
        "No call ran on reasoning: its reasoning tokens are unknown, counted 0."
    )
