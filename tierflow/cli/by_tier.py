"""`tierflow runs --by tier`: the recorded runs' model calls summed per tier
(`tierflow.runs.report.tier_summary`), and the table every command prints it as.

The runs table keeps a run's totals, not its calls; the calls (tier, usage, cost) are in
each thread's state. So this reads the latest checkpoint of every listed thread — one
checkpoint read per run, its whole state decoded (messages included): fine for the runs
of a working database, slow for tens of thousands of long threads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from rich.markup import escape
from rich.table import Table

from tierflow.nodes.state import ModelCall
from tierflow.runs.report import TierSummary

if TYPE_CHECKING:
    from tierflow.store.history import Store


def thread_calls(store: Store, threads: Iterable[str]) -> list[ModelCall]:
    """Every model call recorded in the latest checkpoint of each of `threads`."""
    calls: list[ModelCall] = []
    for thread in threads:
        found = store.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        if found is not None:
            values: dict[str, Any] = found.checkpoint["channel_values"]
            calls.extend(cast(list[ModelCall], values.get("calls") or []))
    return calls


def summary_table(summary: TierSummary, title: str) -> Table:
    """`summary` (`tierflow.runs.report.tier_summary`) as a table titled `title`: a row
    per tier (calls, tokens, cached share, cost), then the total."""
    table = Table(title=title)
    columns = ("tier", "calls", "input", "cached", "cached %", "output", "reasoning", "cost $")
    for column in columns:
        table.add_column(column, justify="left" if column == "tier" else "right")
    rows = summary["tiers"]
    for index, row in enumerate([*rows, summary["total"]]):
        table.add_row(
            "[bold]total[/]" if index == len(rows) else escape(row["tier"]),
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


def by_tier_table(summary: TierSummary, runs: int) -> Table:
    return summary_table(summary, f"cost per tier, {runs} run{'s' if runs != 1 else ''}")
