"""Node functions of the compiled agent graph (route, model, act, observe, guard), the
state they share (typed once), the run context, tools.

The names load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.nodes.context import RunContext
    from tierflow.nodes.state import (
        AgentInput,
        AgentState,
        GuardRecord,
        ModelCall,
        PlanStep,
        Status,
        ToolResult,
    )
    from tierflow.nodes.tools import UPDATE_PLAN, Tool, ToolContext, tool, update_plan_tool

__all__ = [
    "UPDATE_PLAN",
    "AgentInput",
    "AgentState",
    "GuardRecord",
    "ModelCall",
    "PlanStep",
    "RunContext",
    "Status",
    "Tool",
    "ToolContext",
    "ToolResult",
    "tool",
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
        "tierflow.nodes.tools": ("UPDATE_PLAN", "Tool", "ToolContext", "tool", "update_plan_tool"),
    },
)
