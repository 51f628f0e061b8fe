"""`tierflow runs --by tier`: the recorded runs' calls summed per tier, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

# Two tiers; "refund" requests go to reasoning. Each turn declares its usage, cached
# input included, so the sums are known.
AGENT = """
from tierflow import Agent, Price, Rule, RulesRouter, Scenario, ScriptedChatModel, Tier, Turn
from tierflow.models.price import TokenUsage


def usage(input_tokens, cached, output, reasoning=0):
    return TokenUsage(
        input_tokens=input_tokens,
        cached_tokens=cached,
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


SCRIPT = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="refund",
            turns=(Turn(text="Refunded.", usage=usage(4_000, 3_072, 600, 400)),),
        ),
        Scenario(
            match="",
            turns=(Turn(text="Hello.", usage=usage(2_000, 1_024, 100)),),
        ),
    )
)
agent = Agent(
    name="desk",
    instructions="Help.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=Price(input=2.0, cached_input=0.5, output=8.0)),
        Tier(
            name="reasoning",
            model=SCRIPT,
            price=Price(input=1.75, cached_input=0.175, output=14.0),
        ),
    ),
    router=RulesRouter(rules=(Rule(tier="reasoning", keywords=("refund",)),), default="fast"),
    plan_tool=False,
)
"""


@pytest.fixture
def runs(cli: Cli, db: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Three runs: two on fast, one on reasoning; their reports."""
    agent = tmp_path / "desk.py"
    agent.write_text(AGENT)
    reports = []
    for thread, request in (("a", "Hi there"), ("b", "A refund please"), ("c", "Hello")):
        result = cli(
            "run", str(agent), "--input", request, "--thread", thread, "--db", db, "--json"
        )
        assert result.code == 0, result.err
        reports.append(json.loads(result.out))
    return reports


def test_runs_by_tier_json_sums_calls_cached_share_and_cost(
    cli: Cli, db: str, runs: list[dict[str, Any]]
) -> None:
    result = cli("runs", "--db", db, "--by", "tier", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["runs"] == 3
    steps = [step for report in runs for step in report["steps"]]
    tiers = {row["tier"]: row for row in summary["tiers"]}
    assert list(tiers) == ["fast", "reasoning"]
    for tier, row in tiers.items():
        mine = [s for s in steps if s["tier"] == tier]
        assert row["calls"] == len(mine) > 0
        for key in ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens"):
            assert row[key] == sum(s["usage"][key] for s in mine)
        assert row["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in mine))
        assert row["cached_share"] == pytest.approx(row["cached_tokens"] / row["input_tokens"])
        assert 0 < row["cached_share"] < 1
    assert tiers["reasoning"]["reasoning_tokens"] > 0
    total = summary["total"]
    assert total["calls"] == len(steps)
    assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in runs))
    # Each tier's cost is its own price on its own usage.
    fast = tiers["fast"]
    uncached = fast["input_tokens"] - fast["cached_tokens"]
    assert fast["cost_usd"] == pytest.approx(
        (uncached * 2.0 + fast["cached_tokens"] * 0.5 + fast["output_tokens"] * 8.0) / 1e6
    )


@pytest.mark.usefixtures("runs")
def test_runs_by_tier_table_shows_each_tier_cached_share_and_cost(cli: Cli, db: str) -> None:
    summary = json.loads(cli("runs", "--db", db, "--by", "tier", "--json").out)
    result = cli("runs", "--db", db, "--by", "tier")
    assert result.code == 0, result.err
    assert "cost per tier, 3 runs" in result.out
    for row in [*summary["tiers"], summary["total"]]:
        cells = (line.strip("│ ").split() for line in result.out.splitlines())
        line = " ".join(next(c for c in cells if c and c[0] == row["tier"]))
        assert f"{row['cached_share']:.0%}" in line
        assert f"{row['cost_usd']:.5f}" in line


def test_runs_by_anything_else_is_a_usage_error(cli: Cli, db: str) -> None:
    result = cli("runs", "--db", db, "--by", "agent")
    assert result.code == 2
    assert result.out == ""
    assert "--by tier" in result.err
