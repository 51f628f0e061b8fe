"""What routing saved, request by request: the same calls priced as routed, all on the
fast tier and all on the reasoning tier.

Repricing a call on another tier keeps its prompt, its cache hits and its visible
answer; what changes is the price and the reasoning. A call moved onto a tier that
reasons gets that tier's reasoning tokens per call *as observed in the same runs* (a
reasoning model thinks on easy requests too), and a call moved onto a tier that doesn't
reason loses its reasoning tokens. When no call ran on the tier, its reasoning is
unknown: counted as none, and the table says so.

Calls on a tier that isn't priced here — the LLM router's own `"router"` calls — count
in the routed cost only: a one-tier setup routes nothing, so makes no such call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from tierflow.models.price import Price, TokenUsage
from tierflow.nodes.state import ModelCall
from tierflow.runs.report import TierTotals, tier_summary


@dataclass(frozen=True)
class Reasoning:
    """A tier's observed reasoning tokens per call, and how many calls showed it."""

    per_call: float
    calls: int


@dataclass(frozen=True)
class RequestCost:
    """One request's calls, priced as routed and as if every call ran on each tier."""

    title: str
    tiers: tuple[str, ...]
    calls: int
    input_tokens: int
    cached_tokens: int
    routed: float
    on_tier: Mapping[str, float]
    # What the calls on no priced tier (the router's own) cost: in `routed` only.
    overhead: float = 0.0

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


def observed_reasoning(calls: Sequence[ModelCall], tier: str) -> Reasoning:
    on_tier = [c for c in calls if c["tier"] == tier]
    total = sum(c["usage"]["reasoning_tokens"] for c in on_tier)
    return Reasoning(total / len(on_tier) if on_tier else 0.0, len(on_tier))


def repriced(call: ModelCall, tier: str, price: Price, reasoning: Reasoning) -> float:
    """What `call` would have cost on `tier`: its own cost when it ran there."""
    if call["tier"] == tier:
        return call["cost_usd"]
    usage = call["usage"]
    visible = usage["output_tokens"] - usage["reasoning_tokens"]
    thinking = round(reasoning.per_call)
    moved = TokenUsage(
        input_tokens=usage["input_tokens"],
        cached_tokens=usage["cached_tokens"],
        output_tokens=visible + thinking,
        reasoning_tokens=thinking,
    )
    return price.cost(moved)


def request_costs(
    requests: Sequence[tuple[str, Sequence[ModelCall]]], prices: Mapping[str, Price]
) -> list[RequestCost]:
    """Each request priced as routed and on every tier (reasoning observed over all)."""
    every = [call for _, calls in requests for call in calls]
    reasoning = {tier: observed_reasoning(every, tier) for tier in prices}
    costs = []
    for title, calls in requests:
        priced = [c for c in calls if c["tier"] in prices]
        on_tier = {
            tier: sum(repriced(c, tier, price, reasoning[tier]) for c in priced)
            for tier, price in prices.items()
        }
        costs.append(
            RequestCost(
                title=title,
                tiers=tuple(dict.fromkeys(c["tier"] for c in calls)),
                calls=len(calls),
                input_tokens=sum(c["usage"]["input_tokens"] for c in calls),
                cached_tokens=sum(c["usage"]["cached_tokens"] for c in calls),
                routed=sum(c["cost_usd"] for c in calls),
                on_tier=on_tier,
                overhead=sum(c["cost_usd"] for c in calls if c["tier"] not in prices),
            )
        )
    return costs


def versus(cost: RequestCost, strong: str) -> str:
    """Routed against all on `strong`, in a few characters: `-55%`, `on strong`, `+12%`."""
    if cost.tiers == (strong,):
        return f"on {strong}"
    if not cost.on_tier[strong]:
        return "-"
    change = cost.routed / cost.on_tier[strong] - 1
    return f"{change:+.0%}".replace("-", "−")


def why_it_costs_more(cost: RequestCost, strong: str, prices: Mapping[str, Price]) -> str | None:
    """Why routing cost more than `strong` would have for this request, or None."""
    if cost.tiers == (strong,) or cost.routed <= cost.on_tier[strong]:
        return None
    if cost.routed - cost.overhead <= cost.on_tier[strong]:
        return f"the router's own calls cost ${cost.overhead:.5f}"
    dearer_input = [t for t in cost.tiers if t in prices and prices[t].input > prices[strong].input]
    if dearer_input:
        return (
            f"{strong} reads input cheaper (${prices[strong].input:.2f} vs "
            f"${prices[dearer_input[0]].input:.2f}/M) and this request is input-heavy"
        )
    return f"{strong} spent few reasoning tokens per call in these runs"


def tier_table(calls: Sequence[ModelCall], prices: Mapping[str, Price]) -> Table:
    """Calls, tokens (with the cached share of the input) and cost per tier: the priced
    tiers, then any other tier the calls ran on (the router's own calls)."""
    table = Table(title="cost per tier")
    for column in ("tier", "calls", "input", "cached", "output", "reasoning", "cost $"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    summary = tier_summary(calls, list(prices))
    for row in summary["tiers"]:
        table.add_row(escape(row["tier"]), *_tier_cells(row))
    table.add_row("[bold]total[/]", *_tier_cells(summary["total"]), end_section=True)
    return table


def _tier_cells(row: TierTotals) -> list[str]:
    share = f" ({row['cached_share']:.0%})" if row["input_tokens"] else ""
    return [
        f"{row['calls']}",
        f"{row['input_tokens']:,}",
        f"{row['cached_tokens']:,}{share}",
        f"{row['output_tokens']:,}",
        f"{row['reasoning_tokens']:,}",
        f"{row['cost_usd']:.5f}",
    ]


def comparison_table(costs: Sequence[RequestCost], fast: str, strong: str) -> Table:
    """Per request: routed, all on `fast`, all on `strong`, and routed against strong."""
    table = Table(title="routed vs one tier for everything ($)")
    table.add_column("request", no_wrap=True, max_width=22)
    for column in ("routed", f"all {fast}", f"all {strong}", f"vs {strong}"):
        table.add_column(column, justify="right", no_wrap=True)
    for number, cost in enumerate(costs, start=1):
        table.add_row(f"{number}. {cost.title}", *_comparison_cells(cost, fast, strong))
    total = RequestCost(
        title="total",
        tiers=tuple(dict.fromkeys(t for c in costs for t in c.tiers)),
        calls=sum(c.calls for c in costs),
        input_tokens=sum(c.input_tokens for c in costs),
        cached_tokens=sum(c.cached_tokens for c in costs),
        routed=sum(c.routed for c in costs),
        on_tier={t: sum(c.on_tier[t] for c in costs) for t in costs[0].on_tier} if costs else {},
        overhead=sum(c.overhead for c in costs),
    )
    if costs:
        table.add_row("[bold]total[/]", *_comparison_cells(total, fast, strong), end_section=True)
    return table


def _comparison_cells(cost: RequestCost, fast: str, strong: str) -> list[str]:
    return [
        f"{cost.routed:.5f}",
        f"{cost.on_tier[fast]:.5f}",
        f"{cost.on_tier[strong]:.5f}",
        versus(cost, strong),
    ]


def costlier(costs: Sequence[RequestCost], strong: str, prices: Mapping[str, Price]) -> list[str]:
    """A line for each request that cost more routed than all on `strong`, saying why."""
    lines = []
    for number, cost in enumerate(costs, start=1):
        why = why_it_costs_more(cost, strong, prices)
        if why is not None:
            lines.append(f"Request {number} cost more routed than on {strong}: {why}.")
    return lines


def assumptions(calls: Sequence[ModelCall], prices: Mapping[str, Price]) -> list[str]:
    """The assumptions behind the one-tier columns, in words."""
    lines = [
        "One tier for everything: the same calls, prompts and cache hits, priced at that "
        "tier's prices."
    ]
    for tier in prices:
        seen = observed_reasoning(calls, tier)
        if seen.per_call:
            lines.append(
                f"Calls moved onto {tier} add the {seen.per_call:,.0f} reasoning tokens per "
                f"call it spent here ({seen.calls} calls)."
            )
        elif seen.calls == 0:
            lines.append(f"No call ran on {tier}: its reasoning tokens are unknown, counted 0.")
    others = [c for c in calls if c["tier"] not in prices]
    if others:
        names = ", ".join(dict.fromkeys(c["tier"] for c in others))
        lines.append(
            f"The {len(others)} calls on {names} (${sum(c['cost_usd'] for c in others):.5f}) "
            "count in the routed cost only: one tier for everything routes nothing."
        )
    return lines
