"""tierflow: declare an agent — tiers, router, tools, guardrails, limits — and compile it
into a LangGraph graph that routes, acts, observes, checks and checkpoints.

The names below load on first use (`tierflow.lazy`): `import tierflow`, and the
`tierflow` command's help, import no more than they need.
"""

from typing import TYPE_CHECKING

from tierflow.errors import CheckpointError, SpecError, TierflowError
from tierflow.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.graphs.spec import Agent, Limits, Tier
    from tierflow.guardrails.base import Guardrail, Verdict
    from tierflow.guardrails.schema import OutputSchema
    from tierflow.models.price import Price
    from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn
    from tierflow.nodes.context import RunContext
    from tierflow.nodes.route import Rule, RulesRouter
    from tierflow.nodes.state import RouteDecision
    from tierflow.nodes.tools import Tool, ToolContext, tool

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "tierflow.graphs.spec": ("Agent", "Limits", "Tier"),
        "tierflow.guardrails.base": ("Guardrail", "Verdict"),
        "tierflow.guardrails.schema": ("OutputSchema",),
        "tierflow.models.price": ("Price",),
        "tierflow.models.scripted": ("Scenario", "ScriptedChatModel", "Turn"),
        "tierflow.nodes.context": ("RunContext",),
        "tierflow.nodes.route": ("Rule", "RulesRouter"),
        "tierflow.nodes.state": ("RouteDecision",),
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
