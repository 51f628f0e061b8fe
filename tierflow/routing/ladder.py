"""The escalation ladder: an agent's tiers in declaration order, cheapest → strongest.

A guard that escalates moves the request one rung up; on the top rung there is nowhere
to go and the guard asks the same tier again. The guard (whether it can escalate) and
the route node (where to) both read the ladder here, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence


def next_stronger(tier: str, ladder: Sequence[str]) -> str | None:
    """The tier after `tier` on `ladder` (an agent's tiers, cheapest first); None when
    `tier` is the strongest, or not on it."""
    if tier not in ladder:
        return None
    position = list(ladder).index(tier)
    return ladder[position + 1] if position + 1 < len(ladder) else None
