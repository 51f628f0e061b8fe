"""What a router is: anything with a `name`, the `tiers` it may pick, and
`route(request, state) -> RouteDecision` — the decision it writes to the run's state.

Strategies (rules, learned, LLM, composed) implement it; so does escalation, which is a
route decision like any other (`tierflow.routing.ladder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, Protocol, runtime_checkable

from typing_extensions import TypedDict


class RouteDecision(TypedDict):
    """Which tier serves the request, who decided, and why."""

    tier: str
    router: str
    reason: str
    confidence: float
    # The second axis: a reasoning effort ("low", "high", …) where the tier has one.
    effort: NotRequired[str]
    # Expected cost in USD of serving the request so, when the router knows the prices.
    expected_cost_usd: NotRequired[float]


@runtime_checkable
class Router(Protocol):
    # Read-only: the routers are frozen models, whose fields can't be assigned.
    @property
    def name(self) -> str: ...

    def tiers(self) -> set[str]:
        """Every tier this router can return (checked against the agent's tiers)."""
        ...

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision: ...
