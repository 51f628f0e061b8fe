"""Cost per tier with the cached share: one summariser (`tier_summary`) behind
`run --json`'s `by_tier`, `inspect`, `runs --by tier` and the demo's tables — and the LLM
router's own `tier="router"` calls counted as a tier of their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from rich.console import Console
from test_cli_by_tier import AGENT
from test_demo_costs import PRICES, call

from tierflow.cli.costs import (
    assumptions,
    comparison_table,
    costlier,
    request_costs,
    tier_table,
)
from tierflow.runs.report import tier_summary


def table_rows(text: str) -> list[list[str]]:
    """Each printed line's words, the table's borders left out."""
    return [[w for w in line.split() if w not in "│┃"] for line in text.splitlines()]


def test_the_summariser_puts_the_declared_tiers_first_then_the_router() -> None:
    router = call("router", 400, 0, 10)
    hard = call("reasoning", 4_000, 3_072, 600, reasoning=400)
    summary = tier_summary([router, hard, call("reasoning", 2_000, 0, 100)], ["fast", "reasoning"])
    rows = {row["tier"]: row for row in summary["tiers"]}
    assert list(rows) == ["fast", "reasoning", "router"]
    assert rows["fast"]["calls"] == 0 and rows["fast"]["cached_share"] == 0.0
    assert rows["reasoning"]["calls"] == 2
    assert rows["reasoning"]["cached_share"] == pytest.approx(3_072 / 6_000)
    assert rows["reasoning"]["reasoning_tokens"] == 400
    assert rows["router"]["calls"] == 1
    assert rows["router"]["cost_usd"] == pytest.approx(router["cost_usd"])
    total = summary["total"]
    assert (total["tier"], total["calls"], total["input_tokens"]) == ("total", 3, 6_400)
    assert total["cached_share"] == pytest.approx(3_072 / 6_400)
    assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows.values()))


def test_router_calls_count_in_the_routed_cost_not_in_the_one_tier_columns() -> None:
    router = call("router", 400, 0, 10)
    hard = call("reasoning", 4_000, 3_072, 600, reasoning=400)
    (with_router,) = request_costs([("refund", [router, hard])], PRICES)
    (without,) = request_costs([("refund", [hard])], PRICES)
    assert with_router.routed == pytest.approx(without.routed + router["cost_usd"])
    assert with_router.on_tier == pytest.approx(dict(without.on_tier))
    assert with_router.overhead == pytest.approx(router["cost_usd"])
    # Routed to reasoning, plus the router's call: dearer than all-reasoning, and why.
    assert costlier([with_router], "reasoning", PRICES) == [
        f"Request 1 cost more routed than on reasoning: the router's own calls cost "
        f"${router['cost_usd']:.5f}."
    ]
    assert any("calls on router" in line for line in assumptions([router, hard], PRICES))
    console = Console(width=200, record=True)
    console.print(comparison_table([with_router], "fast", "reasoning"))
    console.print(tier_table([router, hard], PRICES))
    rows = {cells[0]: cells[1:] for cells in table_rows(console.export_text()) if cells}
    assert rows["router"] == ["1", "400", "0", "(0%)", "10", "0", f"{router['cost_usd']:.5f}"]
    assert rows["fast"][0] == "0"
    assert rows["total"][:2] == ["2", "4,400"]


@pytest.fixture
def reports(cli: Cli, db: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Two runs of the two-tier agent: "a" on fast, "b" on reasoning; their reports."""
    agent = tmp_path / "desk.py"
    agent.write_text(AGENT)
    found = {}
    for thread, request in (("a", "Hi there"), ("b", "A refund please")):
        result = cli(
            "run", str(agent), "--input", request, "--thread", thread, "--db", db, "--json"
        )
        assert result.code == 0, result.err
        found[thread] = json.loads(result.out)
    return found


def test_run_json_carries_the_calls_per_tier_with_the_cached_share(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["b"]
    (row,) = report["by_tier"]["tiers"]
    assert row["tier"] == "reasoning"
    assert (row["calls"], row["input_tokens"], row["cached_tokens"]) == (1, 4_000, 3_072)
    assert row["cached_share"] == pytest.approx(3_072 / 4_000)
    assert row["reasoning_tokens"] == 400
    assert row["cost_usd"] == pytest.approx(report["cost_usd"])
    assert report["by_tier"]["total"]["cost_usd"] == pytest.approx(report["cost_usd"])
    assert reports["a"]["by_tier"]["tiers"][0]["cached_share"] == pytest.approx(1_024 / 2_000)


def test_inspect_shows_each_calls_cached_input_and_the_thread_per_tier(
    cli: Cli, db: str, reports: dict[str, dict[str, Any]]
) -> None:
    result = cli("inspect", "b", "--db", db)
    assert result.code == 0, result.err
    assert "4,000 in (3,072 cached) / 600 out tokens" in result.out
    assert "thread b: cost per tier" in result.out
    (row,) = [c for c in table_rows(result.out) if c and c[0] == "reasoning"]
    assert row[1:5] == ["1", "4,000", "3,072", "77%"]
    assert row[-1] == f"{reports['b']['cost_usd']:.5f}"
    document = json.loads(cli("inspect", "b", "--db", db, "--json").out)
    assert document["thread"] == "b"
    assert document["by_tier"] == reports["b"]["by_tier"]
    kinds = [e["kind"] for m in document["moments"] for e in m["events"]]
    assert "model" in kinds
