"""A workflow run's cost per step (`tierflow.runs.report.step_summary`), as a table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from tierflow.runs.report import StepTotals


def by_step_table(rows: Sequence[StepTotals], title: str = "cost per step") -> Table:
    """A row per step that called a model: its tiers and efforts, calls, tokens, cost;
    then the total."""
    table = Table(title=title)
    # Seven columns fit an 80-column terminal: reasoning tokens are within `output`.
    columns = ("step", "tier/effort", "calls", "input", "cached", "output")
    for column in (*columns, "cost $"):
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for index, row in enumerate(rows):
        efforts = "/".join(row["efforts"])
        table.add_row(
            escape(row["step"]),
            escape(", ".join(row["tiers"]) + (f"/{efforts}" if efforts else "")),
            f"{row['calls']}",
            f"{row['input_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['cost_usd']:.5f}",
            end_section=index == len(rows) - 1,
        )
    table.add_row(
        "[bold]total[/]",
        "",
        f"{sum(r['calls'] for r in rows)}",
        f"{sum(r['input_tokens'] for r in rows):,}",
        f"{sum(r['cached_tokens'] for r in rows):,}",
        f"{sum(r['output_tokens'] for r in rows):,}",
        f"{sum(r['cost_usd'] for r in rows):.5f}",
    )
    return table
