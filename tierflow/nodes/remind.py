"""The persistence reminder: objective, plan and progress, rebuilt from state.

The model node builds it inside every model call and puts it last in the model's
input, where it is most salient and leaves the history's prefix cacheable. It is never
stored — not in the history, not in state — so it adds nothing to the conversation's
growth and is exactly as current after a resume as before a crash.
"""

from __future__ import annotations

from langgraph.config import get_config

from tierflow.models.messages import last_request_index, text_of
from tierflow.nodes.state import AgentState, PlanStep, RouteUpdate

STATUS_MARK = {
    "pending": "[ ]",
    "in_progress": "[~]",
    "done": "[x]",
    "skipped": "[-]",
    "failed": "[!]",
}
# A config key a workflow sets for an agent step: its objective, steps and the step's goal.
WORKFLOW_REMINDER = "tierflow_workflow"


def build_reminder(objective: str, plan: list[PlanStep], steps: int, max_steps: int | None) -> str:
    """`max_steps` None: the progress line without the limit (a reader who doesn't know
    the agent, like `tierflow inspect`)."""
    lines = ["Reminder — stay on the objective until it is done.", f"Objective: {objective}"]
    if plan:
        lines.append("Plan:")
        lines += [
            f"  {n}. {STATUS_MARK[item['status']]} {item['step']}"
            for n, item in enumerate(plan, start=1)
        ]
    else:
        lines.append("Plan: none yet (call update_plan for work with several steps).")
    limit = "" if max_steps is None else f" of {max_steps}"
    lines.append(f"Progress: {steps}{limit} model steps used.")
    return "\n".join(lines)


def new_request(state: AgentState) -> RouteUpdate | None:
    """The reset a new user request brings (a message id not seen before): a fresh
    objective, plan, step count and route. None while the current request carries on."""
    messages = state.get("messages", [])
    index = last_request_index(messages)
    if index is None:
        raise ValueError("the run has no user request: send a human message first")
    request = messages[index]
    if request.id == state.get("request_id"):
        return None
    return RouteUpdate(
        request_id=str(request.id),
        objective=text_of(request),
        plan=[],
        steps=0,
        route=None,
        reasks={},
        candidate=None,
        feedback=None,
        escalation=None,
        status="running",
        answer=None,
        error=None,
    )


def reminder_of(state: AgentState, max_steps: int) -> str:
    """The reminder the next model call ends with, from the state as it is now — under
    the workflow's, when the agent serves a workflow's step."""
    own = build_reminder(
        state.get("objective", ""), state.get("plan", []), state.get("steps", 0), max_steps
    )
    workflow = workflow_reminder()
    return own if workflow is None else f"{workflow}\n\n{own}"


def workflow_reminder() -> str | None:
    """The workflow's part of the reminder, from the run's config (a workflow's step
    node sets it on every run of the step, so it is as current after a resume)."""
    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:  # called outside a run
        return None
    shown = configurable.get(WORKFLOW_REMINDER)
    if not isinstance(shown, dict):
        return None
    lines = [f"Workflow {shown['workflow']}: {shown['objective']}", "Steps:"]
    lines += [
        f"  {n}. {STATUS_MARK.get(item['status'], '[ ]')} {item['step']}"
        for n, item in enumerate(shown["steps"], start=1)
    ]
    lines.append(f"You are doing step {shown['current']!r}: {shown['goal']}")
    return "\n".join(lines)
