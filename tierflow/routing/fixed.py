"""The router of a workflow step that declares its intelligence: always the same tier and
reasoning effort, whatever the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierflow.foundation.spec import SpecModel
from tierflow.routing.router import RouteDecision


class FixedRouter(SpecModel):
    """Every request to `tier`, at `effort` when given."""

    tier: str
    effort: str | None = None
    name: str = "declared"

    def tiers(self) -> set[str]:
        return {self.tier}

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        decision = RouteDecision(
            tier=self.tier, router=self.name, reason="declared by the step", confidence=1.0
        )
        if self.effort is not None:
            decision["effort"] = self.effort
        return decision
