"""tierflow: declare an agent — tiers, router, tools, guardrails, limits — and compile it
into a LangGraph graph that routes, acts, observes, checks and checkpoints.

The errors load with the package (`tierflow.errors` imports nothing); the other names
load on first use (`tierflow.foundation.lazy`): `import tierflow`, and the `tierflow`
command's help, import no more than they need. Each room exports more
(`tierflow.governance`, `tierflow.guardrails`, `tierflow.routing`, …).
"""

from typing import TYPE_CHECKING

from tierflow.errors import (
    AgentChanged,
    BudgetExceeded,
    CheckpointError,
    GovernanceError,
    LoadError,
    ModelError,
    PermissionDenied,
    RendererMissing,
    RoutingDataError,
    RunFailed,
    ScriptExhausted,
    SpecError,
    ThreadBusy,
    TierflowError,
    TransientError,
)
from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.graphs.spec import Agent, Limits, Tier
    from tierflow.graphs.workflow import (
        AgentStep,
        Approval,
        FunctionStep,
        Loop,
        Parallel,
        Workflow,
    )
    from tierflow.guardrails.base import Guardrail, Verdict
    from tierflow.guardrails.schema import OutputSchema
    from tierflow.models.price import Price
    from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn
    from tierflow.nodes.context import RunContext
    from tierflow.routing.router import RouteDecision
    from tierflow.routing.rules import Rule, RulesRouter
    from tierflow.tools.arguments import ToolContext
    from tierflow.tools.declare import Tool, tool

__all__ = [
    "Agent",
    "AgentChanged",
    "AgentStep",
    "Approval",
    "BudgetExceeded",
    "CheckpointError",
    "FunctionStep",
    "GovernanceError",
    "Guardrail",
    "Limits",
    "LoadError",
    "Loop",
    "ModelError",
    "OutputSchema",
    "Parallel",
    "PermissionDenied",
    "Price",
    "RendererMissing",
    "RouteDecision",
    "RoutingDataError",
    "Rule",
    "RulesRouter",
    "RunContext",
    "RunFailed",
    "Scenario",
    "ScriptExhausted",
    "ScriptedChatModel",
    "SpecError",
    "ThreadBusy",
    "Tier",
    "TierflowError",
    "Tool",
    "ToolContext",
    "TransientError",
    "Turn",
    "Verdict",
    "Workflow",
    "tool",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.graphs.spec": ("Agent", "Limits", "Tier"),
        "tierflow.graphs.workflow": (
            "AgentStep",
            "Approval",
            "FunctionStep",
            "Loop",
            "Parallel",
            "Workflow",
        ),
        "tierflow.guardrails.base": ("Guardrail", "Verdict"),
        "tierflow.guardrails.schema": ("OutputSchema",),
        "tierflow.models.price": ("Price",),
        "tierflow.models.scripted": ("Scenario", "ScriptedChatModel", "Turn"),
        "tierflow.nodes.context": ("RunContext",),
        "tierflow.tools.arguments": ("ToolContext",),
        "tierflow.tools.declare": ("Tool", "tool"),
        "tierflow.routing.router": ("RouteDecision",),
        "tierflow.routing.rules": ("Rule", "RulesRouter"),
    },
)
