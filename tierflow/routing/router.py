"""What a router is: anything with a `name`, the `tiers` it may pick, and
`route(request, state) -> RouteDecision` — the decision it writes to the run's state.

Strategies (rules, learned, LLM, composed) implement it; so does escalation, which is a
route decision like any other (`tierflow.routing.ladder`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NotRequired, Protocol, runtime_checkable

from typing_extensions import TypedDict

from tierflow.models.price import TokenUsage


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


class RouterCall(TypedDict):
    """A model call a router made to decide (the LLM router's classification): what it
    used and cost, recorded by the route node as a `tier="router"` call of the run."""

    router: str
    model: str
    usage: TokenUsage
    usage_source: str
    cost_usd: float
    # "declared", the maintained table's version, or "unpriced" (cost 0: no price known).
    price_source: str


_CALLS: ContextVar[list[RouterCall] | None] = ContextVar("tierflow_router_calls", default=None)


@contextmanager
def router_calls() -> Iterator[list[RouterCall]]:
    """Collect the model calls routers make inside the block (a composed router's
    strategies included), beside their decisions: `Router.route` stays a decision."""
    calls: list[RouterCall] = []
    token = _CALLS.set(calls)
    try:
        yield calls
    finally:
        _CALLS.reset(token)


def record_router_call(call: RouterCall) -> None:
    """Report a router's model call to the enclosing `router_calls()` (if any)."""
    calls = _CALLS.get()
    if calls is not None:
        calls.append(call)


@runtime_checkable
class Router(Protocol):
    # Read-only: the routers are frozen models, whose fields can't be assigned.
    @property
    def name(self) -> str: ...

    def tiers(self) -> set[str]:
        """Every tier this router can return (checked against the agent's tiers)."""
        ...

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision: ...
