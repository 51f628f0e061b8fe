"""Node functions of the compiled agent graph, the state they share, tools."""

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
    "Status",
    "Tool",
    "ToolContext",
    "ToolResult",
    "tool",
    "update_plan_tool",
]
