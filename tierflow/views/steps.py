"""A workflow run's cost per step, as a table of the report."""

from __future__ import annotations

from tierflow.views.collect import RunData
from tierflow.views.html import Markup, count, num, table, usd


def step_costs(data: RunData) -> Markup:
    """A workflow's model calls summed per step: its tiers and efforts, tokens, cost."""
    head = ["step", "tier/effort", "calls", "input", "cached", "output", "reasoning", "cost"]
    rows = [
        [
            row["step"],
            "/".join([", ".join(row["tiers"]), *row["efforts"]]),
            num(count(row["calls"])),
            num(count(row["input_tokens"])),
            num(count(row["cached_tokens"])),
            num(count(row["output_tokens"])),
            num(count(row["reasoning_tokens"])),
            num(usd(row["cost_usd"])),
        ]
        for row in data.by_step
    ]
    return table(head, rows, class_="steps")
