"""The built-in `update_plan` tool: how a model sets the plan kept in state."""

from __future__ import annotations

from tierflow.nodes.state import PlanStep
from tierflow.tools.declare import Tool, tool

UPDATE_PLAN = "update_plan"


def _update_plan(steps: list[PlanStep]) -> list[PlanStep]:
    """Set or revise your plan for this request: the full list of steps, each with a
    status (pending, in_progress, done). The plan is shown back to you at every step.
    Update it as you complete steps."""
    return steps


def update_plan_tool() -> Tool:
    """The built-in tool through which a model sets the plan kept in state."""
    return tool(name=UPDATE_PLAN)(_update_plan)
