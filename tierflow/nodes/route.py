"""The upstream router: picks a tier for each request and says why.

A router is anything with a `name`, the `tiers` it may pick, and
`route(request, state) -> RouteDecision`. `RulesRouter` is declarative data (it
serialises with the agent); other strategies plug in through the same protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from langchain_core.runnables import RunnableConfig
from pydantic import Field, field_validator, model_validator

from tierflow.nodes.context import Governing, principal_of, run_context
from tierflow.nodes.remind import new_request
from tierflow.nodes.state import AgentState, RouteDecision, RouteUpdate
from tierflow.spec_model import SpecModel


@runtime_checkable
class Router(Protocol):
    name: str

    def tiers(self) -> set[str]:
        """Every tier this router can return (checked against the agent's tiers)."""
        ...

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision: ...


class Rule(SpecModel):
    """Send a request to `tier` when any of its conditions holds.

    `keywords` match whole words, case-insensitively; `pattern` is a regular expression
    searched case-insensitively; `min_chars` matches requests at least that long.
    """

    tier: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    min_chars: int | None = Field(default=None, gt=0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from error
        return pattern

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if not self.keywords and self.pattern is None and self.min_chars is None:
            raise ValueError("a rule needs keywords, a pattern or min_chars")
        return self

    def explain(self, request: str) -> str | None:
        """Why this rule matches `request`, or None if it doesn't."""
        for keyword in self.keywords:
            if re.search(rf"\b{re.escape(keyword)}\b", request, re.IGNORECASE):
                return f"keyword {keyword!r}"
        if self.pattern is not None and re.search(self.pattern, request, re.IGNORECASE):
            return f"pattern {self.pattern!r}"
        if self.min_chars is not None and len(request) >= self.min_chars:
            return f"length {len(request)} >= {self.min_chars} chars"
        return None


class RulesRouter(SpecModel):
    """First matching rule wins; otherwise the `default` tier."""

    rules: tuple[Rule, ...] = ()
    default: str
    name: str = "rules"

    def tiers(self) -> set[str]:
        return {self.default, *(rule.tier for rule in self.rules)}

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        for index, rule in enumerate(self.rules):
            why = rule.explain(request)
            if why is not None:
                return RouteDecision(
                    tier=rule.tier,
                    router=self.name,
                    reason=f"rule {index + 1}: {why}",
                    confidence=1.0,
                )
        return RouteDecision(
            tier=self.default, router=self.name, reason="no rule matched: default", confidence=1.0
        )


def make_route_node(router: Router, tiers: Sequence[str], governing: Governing) -> Any:
    """The `route` node, entered once per request (from START) and again on escalation.

    A new request (a user message not seen before) starts a fresh objective, plan, step
    count and route, records who the run acts for (the run context's principal, kept
    with the thread) and declares a governed run's budget; then the router decides
    once and the decision is kept — unless a guard asked for escalation, which moves
    the request to the next tier in `tiers` (declared from cheapest to strongest).
    Escalation is a route decision like any other."""

    def escalate(current: RouteDecision, why: str) -> RouteUpdate:
        position = tiers.index(current["tier"])
        if position + 1 >= len(tiers):
            return RouteUpdate(escalation=None)
        decision = RouteDecision(
            tier=tiers[position + 1],
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
        decision = router.route(objective, {**state, **update})
        if decision["tier"] not in tiers:
            raise ValueError(
                f"router {router.name!r} chose tier {decision['tier']!r}, "
                f"which the agent does not declare (tiers: {list(tiers)})"
            )
        return update | RouteUpdate(route=decision, routes=[decision])

    return route
