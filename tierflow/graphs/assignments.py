"""Alternative intelligence for a workflow's agent steps — what per-step routing is
measured against (`tierflow bench-routes`):

- `declared`: each step as declared;
- `routed`: each step behind its agent's own router;
- `all-fast`: every step on its agent's cheapest tier;
- `all-reasoning`: every step on its agent's strongest tier, at high effort.
"""

from __future__ import annotations

from typing import Any, Literal

from tierflow.graphs.workflow import AgentStep, Loop, Parallel, Workflow

Assignment = Literal["declared", "routed", "all-fast", "all-reasoning"]
ASSIGNMENTS: tuple[Assignment, ...] = ("all-fast", "all-reasoning", "declared", "routed")


def assigned(workflow: Workflow, assignment: Assignment) -> Workflow:
    """`workflow` with every agent step's intelligence replaced by `assignment`'s."""
    if assignment == "declared":
        return workflow
    steps = tuple(_step(step, assignment) for step in workflow.steps)
    return workflow.model_copy(update={"steps": steps})


def _step(step: Any, assignment: Assignment) -> Any:
    if isinstance(step, AgentStep):
        tiers = [t.name for t in step.agent.tiers]
        if assignment == "routed":
            update: dict[str, Any] = {"tier": None, "effort": None, "router": None}
        elif assignment == "all-fast":
            update = {"tier": tiers[0], "effort": None, "router": None}
        else:  # the strongest tier can't escalate further
            update = {"tier": tiers[-1], "effort": "high", "router": None, "on_fail": "end"}
        return step.model_copy(update=update)
    if isinstance(step, Parallel | Loop):
        return step.model_copy(update={"steps": tuple(_step(s, assignment) for s in step.steps)})
    if isinstance(step, Workflow):
        return assigned(step, assignment)
    return step
