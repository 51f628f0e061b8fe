"""The `route` node: runs the agent's router once per request, and moves the request
up the tier ladder when a guard asks for escalation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig

from tierflow.errors import BudgetExceeded
from tierflow.governance.budget import Spend
from tierflow.governance.governor import Governor
from tierflow.nodes.context import Governing, principal_of, run_context
from tierflow.nodes.remind import new_request
from tierflow.nodes.state import AgentState, ModelCall, RouteUpdate
from tierflow.routing.ladder import next_stronger
from tierflow.routing.router import RouteDecision, Router, RouterCall, router_calls


def make_route_node(router: Router, tiers: Sequence[str], governing: Governing) -> Any:
    """The `route` node, entered once per request (from START) and again on escalation.

    A new request (a user message not seen before) starts a fresh objective, plan, step
    count and route, records who the run acts for (the run context's principal, kept
    with the thread) and declares a governed run's budget; then the router decides
    once and the decision is kept — unless a guard asked for escalation, which moves
    the request one tier up the ladder (`tiers`, declared from cheapest to strongest;
    `tierflow.routing.ladder`). Escalation is a route decision like any other."""

    def escalate(current: RouteDecision, why: str) -> RouteUpdate:
        stronger = next_stronger(current["tier"], tiers)
        if stronger is None:
            return RouteUpdate(escalation=None)
        decision = RouteDecision(
            tier=stronger,
            router="escalation",
            reason=f"{why} (on tier {current['tier']!r})",
            confidence=1.0,
        )
        return RouteUpdate(route=decision, routes=[decision], escalation=None)

    def started(state: AgentState, config: RunnableConfig) -> RouteUpdate:
        """What a new request writes before its route: the reset, the principal."""
        update = new_request(state) or RouteUpdate()
        if not update:
            return update
        recorded = state.get("principal")
        principal = principal_of(run_context(), recorded)
        if principal is not None and recorded is None:
            update["principal"] = principal.model_dump(mode="json")
        governor = governing.governor(config, recorded)
        if governor is not None:
            governor.declare_budgets()
        return update

    def route(state: AgentState, config: RunnableConfig) -> RouteUpdate:
        update = started(state, config)
        current = None if update else state.get("route")
        why = state.get("escalation")
        if current is not None and why:
            return escalate(current, why)
        if current is not None:
            return update
        objective = update.get("objective", state.get("objective", ""))
        with router_calls() as made:
            decision = router.route(objective, {**state, **update})
        if made:
            step = update.get("steps", state.get("steps", 0))
            update["calls"] = [router_call(call, step) for call in made]
            settle_router_calls(governing.governor(config, state.get("principal")), update)
        if decision["tier"] not in tiers:
            raise ValueError(
                f"router {router.name!r} chose tier {decision['tier']!r}, "
                f"which the agent does not declare (tiers: {list(tiers)})"
            )
        return update | RouteUpdate(route=decision, routes=[decision])

    return route


def settle_router_calls(governor: Governor | None, update: RouteUpdate) -> None:
    """Put the router's calls on the run's ledger: each is already spent, so it is held
    at what it cost and settled at once (audited as a model call). A hold refused
    because no budget is left is audited as denied; the tier's own call is then refused
    too and ends the run `budget_exceeded`. Ungoverned (no governor): nothing to do."""
    if governor is None:
        return
    for call in update.get("calls", []):
        usage = call["usage"]
        spent = Spend(usd=call["cost_usd"], tokens=usage["input_tokens"] + usage["output_tokens"])
        held = governor.reserve_model(estimate=spent, step=call["step"], model=call["model"])
        if not isinstance(held, BudgetExceeded):
            governor.settle_model(held, actual=spent, step=call["step"])


def router_call(call: RouterCall, step: int) -> ModelCall:
    """A router's classification call as a model call of the run, `tier="router"`."""
    return ModelCall(
        step=step,
        tier="router",
        model=call["model"],
        usage=call["usage"],
        usage_source=call["usage_source"],
        cost_usd=call["cost_usd"],
        tool_calls=[],
        price_source=call["price_source"],
    )
