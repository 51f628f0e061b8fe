"""The second axis of a route decision: reasoning effort, and what the decision costs.

For a reasoning model the bill is driven by output and reasoning tokens more than by
which tier is called, so a router may say *how hard* the strong tier should think, and
what it expects the request to cost there. Both are optional keys of `RouteDecision`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from tierflow.foundation.spec import SpecModel
from tierflow.models.messages import text_of
from tierflow.models.price import Price, expected_cost
from tierflow.routing.router import RouteDecision

# OpenAI's `reasoning_effort` values (not every model takes every one).
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
CHARS_PER_TOKEN = 4


class TierCost(SpecModel):
    """What one request is expected to cost on a tier: its price, the share of the
    input the provider's cache serves, and the expected answer and reasoning tokens
    (reasoning per effort; `default` when the decision names no effort)."""

    price: Price
    cached_share: float = Field(default=0.0, ge=0.0, le=1.0)
    output_tokens: float = Field(default=500.0, ge=0.0)
    reasoning_tokens: Mapping[str, float] = Field(default_factory=dict)

    def estimate(self, input_tokens: float, effort: str | None) -> float:
        reasoning = self.reasoning_tokens.get(effort or "default", 0.0)
        return expected_cost(
            self.price, input_tokens, self.cached_share, self.output_tokens, reasoning
        )


class EffortBand(SpecModel):
    """Scores of at least `min_score` get this reasoning `effort`."""

    min_score: float
    effort: Effort


def effort_for(bands: tuple[EffortBand, ...], score: float) -> str | None:
    """The effort of the highest band the score reaches (None below every band)."""
    chosen = None
    for band in sorted(bands, key=lambda b: b.min_score):
        if score >= band.min_score:
            chosen = band.effort
    return chosen


def input_tokens_of(request: str, state: Mapping[str, Any]) -> float:
    """The input a model call would read: the conversation so far (at least the
    request), at four characters a token."""
    messages = state.get("messages") or []
    chars = sum(len(text_of(m)) for m in messages) if messages else len(request)
    return max(chars, len(request)) / CHARS_PER_TOKEN


def complete(
    decision: RouteDecision,
    request: str,
    state: Mapping[str, Any],
    costs: Mapping[str, TierCost],
    effort: str | None = None,
) -> RouteDecision:
    """`decision` with its effort and, when the tier's cost is known, expected cost."""
    completed = RouteDecision(**decision)
    if effort is not None:
        completed["effort"] = effort
    cost = costs.get(decision["tier"])
    if cost is not None:
        chosen = completed.get("effort")
        completed["expected_cost_usd"] = cost.estimate(input_tokens_of(request, state), chosen)
    return completed
