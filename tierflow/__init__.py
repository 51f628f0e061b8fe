"""tierflow: declare an agent — tiers, router, tools, guardrails, limits — and compile it
into a LangGraph graph that routes, acts, observes, checks and checkpoints.

The names below load on first use (`tierflow.foundation.lazy`): `import tierflow`, and the
`tierflow` command's help, import no more than they need.
"""

from typing import TYPE_CHECKING

from tierflow.errors import CheckpointError, SpecError, TierflowError
from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.graphs.spec import Agent, Limits, Tier
    from tierflow.guardrails.base import Guardrail, Verdict
    from tierflow.guardrails.schema import OutputSchema
    from tierflow.models.price import Price
    from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn
    from tierflow.nodes.context import RunContext
    from tierflow.nodes.tools import Tool, ToolContext, tool
    from tierflow.routing.router import RouteDecision
    from tierflow.routing.rules import Rule, RulesRouter

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "tierflow.graphs.spec": ("Agent", "Limits", "Tier"),
        "tierflow.guardrails.base": ("Guardrail", "Verdict"),
        "tierflow.guardrails.schema": ("OutputSchema",),
        "tierflow.models.price": ("Price",),
        "tierflow.models.scripted": ("Scenario", "ScriptedChatModel", "Turn"),
        "tierflow.nodes.context": ("RunContext",),
        "tierflow.routing.rules": ("Rule", "RulesRouter"),
        "tierflow.routing.router": ("RouteDecision",),
        "tierflow.nodes.tools": ("Tool", "ToolContext", "tool"),
    },
)

__all__ = [
    "Agent",
    "CheckpointError",
    "Guardrail",
    "Limits",
    "OutputSchema",
    "Price",
    "RouteDecision",
    "Rule",
    "RulesRouter",
    "RunContext",
    "Scenario",
    "ScriptedChatModel",
    "SpecError",
    "Tier",
    "TierflowError",
    "Tool",
    "ToolContext",
    "Turn",
    "Verdict",
    "tool",
]
