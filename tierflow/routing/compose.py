"""Composition: try routing strategies in order; the first confident decision wins.

Each strategy has its own bar (`min_confidence`): a rules router is sure or silent, a
learned router is sure far from its threshold, an LLM router says how sure it is.
When no strategy clears its bar, the request goes to `default`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, field_serializer, field_validator

from tierflow.foundation.spec import SpecModel
from tierflow.routing.decision import TierCost, complete
from tierflow.routing.router import RouteDecision, Router


class Strategy(SpecModel):
    """A router and the confidence its decision needs to be taken."""

    router: Any
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("router")
    @classmethod
    def _is_router(cls, router: Any) -> Any:
        if not isinstance(router, Router):
            raise ValueError("must have name, tiers() and route(request, state)")
        return router

    @field_serializer("router")
    def _spec(self, router: Any) -> dict[str, Any]:
        if isinstance(router, BaseModel):
            return {"class": type(router).__name__, **router.model_dump(mode="json")}
        return {"class": type(router).__name__, "name": router.name}


class ComposedRouter(SpecModel):
    """`strategies` in order, first confident decision wins; else `default`."""

    strategies: tuple[Strategy, ...]
    default: str
    name: str = "composed"
    costs: Mapping[str, TierCost] = Field(default_factory=dict)

    @field_validator("strategies")
    @classmethod
    def _some(cls, strategies: tuple[Strategy, ...]) -> tuple[Strategy, ...]:
        if not strategies:
            raise ValueError("compose at least one strategy")
        return strategies

    def tiers(self) -> set[str]:
        return {self.default}.union(*(s.router.tiers() for s in self.strategies))

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        unsure: list[str] = []
        for strategy in self.strategies:
            decision: RouteDecision = strategy.router.route(request, state)
            if decision["confidence"] >= strategy.min_confidence:
                taken = RouteDecision(**decision)
                taken["router"] = f"{self.name}/{decision['router']}"
                taken["reason"] = (
                    f"{decision['reason']} (confidence {decision['confidence']:.2f} "
                    f">= {strategy.min_confidence:.2f})"
                )
                return complete(taken, request, state, self.costs) if self.costs else taken
            unsure.append(
                f"{decision['router']} said {decision['tier']} at "
                f"{decision['confidence']:.2f} < {strategy.min_confidence:.2f}"
            )
        fallback = RouteDecision(
            tier=self.default,
            router=self.name,
            reason=f"no confident strategy ({'; '.join(unsure)}): default",
            confidence=0.0,
        )
        return complete(fallback, request, state, self.costs)
