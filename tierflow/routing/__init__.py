"""Routing: which model tier (and reasoning effort) serves each request.

The `Router` protocol and its decision, the strategies that implement it (rules,
learned, LLM, composed), their prices, and the escalation ladder — the one place that
decides tiers and their order. Offline training, calibration and evaluation of a learned
router live beside it in `tierflow.routing.offline` (they need `tierflow[train]`).

The names load on first use (`tierflow.foundation.lazy`): a trained learned router loads
and routes with numpy alone.
"""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.routing.compose import ComposedRouter, Strategy
    from tierflow.routing.decision import Effort, EffortBand, TierCost
    from tierflow.routing.ladder import next_stronger
    from tierflow.routing.learned import LearnedRouter
    from tierflow.routing.llm import LLMRouter, RouteChoice
    from tierflow.routing.pricing import Pricing
    from tierflow.routing.router import RouteDecision, Router
    from tierflow.routing.rules import Rule, RulesRouter

__all__ = [
    "ComposedRouter",
    "Effort",
    "EffortBand",
    "LLMRouter",
    "LearnedRouter",
    "Pricing",
    "RouteChoice",
    "RouteDecision",
    "Router",
    "Rule",
    "RulesRouter",
    "Strategy",
    "TierCost",
    "next_stronger",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.routing.compose": ("ComposedRouter", "Strategy"),
        "tierflow.routing.decision": ("Effort", "EffortBand", "TierCost"),
        "tierflow.routing.ladder": ("next_stronger",),
        "tierflow.routing.learned": ("LearnedRouter",),
        "tierflow.routing.llm": ("LLMRouter", "RouteChoice"),
        "tierflow.routing.pricing": ("Pricing",),
        "tierflow.routing.router": ("RouteDecision", "Router"),
        "tierflow.routing.rules": ("Rule", "RulesRouter"),
    },
)
