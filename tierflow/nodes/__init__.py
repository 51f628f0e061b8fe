"""Node functions of the compiled agent graph (route, model, act, observe, guard), the
state they share (typed once), the run context, the plan tool.

The names load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.nodes.context import RunContext
    from tierflow.nodes.plan_tool import UPDATE_PLAN, update_plan_tool
    from tierflow.nodes.state import (
        AgentInput,
        AgentState,
        GuardRecord,
        ModelCall,
        PlanStep,
        Status,
        ToolResult,
    )

__all__ = [
    "UPDATE_PLAN",
    "AgentInput",
    "AgentState",
    "GuardRecord",
    "ModelCall",
    "PlanStep",
    "RunContext",
    "Status",
    "ToolResult",
    "update_plan_tool",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.nodes.context": ("RunContext",),
        "tierflow.nodes.state": (
            "AgentInput",
            "AgentState",
            "GuardRecord",
            "ModelCall",
            "PlanStep",
            "Status",
            "ToolResult",
        ),
        "tierflow.nodes.plan_tool": ("UPDATE_PLAN", "update_plan_tool"),
    },
)
