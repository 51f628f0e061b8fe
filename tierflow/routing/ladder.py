"""Tier strength, for escalation: "the next stronger tier than X".

A router that knows which of its tiers is stronger says so with `ladder()` (weakest
first: the learned router's weak → strong, the LLM router's choices in order). Any
other router defers to the agent's tiers in declaration order, weakest first.
"""

from __future__ import annotations

from collections.abc import Sequence


def next_stronger(tier: str, declared: Sequence[str], router: object | None = None) -> str | None:
    """The tier after `tier` on the router's ladder if it has one, else in `declared`;
    None when `tier` is the strongest (or on neither)."""
    ladder = getattr(router, "ladder", None)
    order = tuple(ladder()) if callable(ladder) else tuple(declared)
    if tier not in order:
        order = tuple(declared)
    if tier not in order:
        return None
    position = order.index(tier)
    return order[position + 1] if position + 1 < len(order) else None
