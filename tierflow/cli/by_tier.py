"""`tierflow runs --by tier`: the recorded runs' model calls summed per tier.

The runs table keeps a run's totals, not its calls; the calls (tier, usage, cost) are in
each thread's state. So this reads the latest checkpoint of every listed thread — one
checkpoint read per run, its whole state decoded (messages included): fine for the runs
of a working database, slow for tens of thousands of long threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, cast

from rich.table import Table

from tierflow.nodes.state import ModelCall

if TYPE_CHECKING:
    from tierflow.store.history import Store


class TierTotals(TypedDict):
    """One tier's calls summed: tokens as the provider reported them (`input_tokens`
    includes `cached_tokens`, `output_tokens` includes `reasoning_tokens`), the share
    of input read from the prompt cache (0 to 1), and the calls' cost as priced."""

    tier: str
    calls: int
    input_tokens: int
    cached_tokens: int
    cached_share: float
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float


def thread_calls(store: Store, threads: Iterable[str]) -> list[ModelCall]:
    """Every model call recorded in the latest checkpoint of each of `threads`."""
    calls: list[ModelCall] = []
    for thread in threads:
        found = store.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        if found is not None:
            values: dict[str, Any] = found.checkpoint["channel_values"]
            calls.extend(cast(list[ModelCall], values.get("calls") or []))
    return calls


def _totals(tier: str, calls: Sequence[ModelCall]) -> TierTotals:
    input_tokens = sum(c["usage"]["input_tokens"] for c in calls)
    cached = sum(c["usage"]["cached_tokens"] for c in calls)
    return TierTotals(
        tier=tier,
        calls=len(calls),
        input_tokens=input_tokens,
        cached_tokens=cached,
        cached_share=cached / input_tokens if input_tokens else 0.0,
        output_tokens=sum(c["usage"]["output_tokens"] for c in calls),
        reasoning_tokens=sum(c["usage"]["reasoning_tokens"] for c in calls),
        cost_usd=sum(c["cost_usd"] for c in calls),
    )


def by_tier(calls: Sequence[ModelCall]) -> dict[str, Any]:
    """The calls summed per tier (tiers in the order they first ran) and in total."""
    tiers = list(dict.fromkeys(c["tier"] for c in calls))
    return {
        "tiers": [_totals(t, [c for c in calls if c["tier"] == t]) for t in tiers],
        "total": _totals("total", calls),
    }


def by_tier_table(summary: dict[str, Any], runs: int) -> Table:
    table = Table(title=f"cost per tier, {runs} run{'s' if runs != 1 else ''}")
    columns = ("tier", "calls", "input", "cached", "cached %", "output", "reasoning", "cost $")
    for column in columns:
        table.add_column(column, justify="left" if column == "tier" else "right")
    rows: list[TierTotals] = summary["tiers"]
    for index, row in enumerate([*rows, summary["total"]]):
        table.add_row(
            "[bold]total[/]" if index == len(rows) else row["tier"],
            f"{row['calls']}",
            f"{row['input_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['cached_share']:.0%}",
            f"{row['output_tokens']:,}",
            f"{row['reasoning_tokens']:,}",
            f"{row['cost_usd']:.5f}",
            end_section=index == len(rows) - 1,
        )
    return table
