"""The persistence reminder: objective, plan and progress, rebuilt from state.

The reminder is written to its own state key (overwritten each step), never appended
to the message history, so it adds nothing to the conversation's growth and is exactly
as current after a resume as before a crash. The model node puts it last in the model's
input, where it is most salient and leaves the history's prefix cacheable.
"""

from __future__ import annotations

from typing import Any

from tierflow.models.messages import last_request_index, text_of
from tierflow.nodes.state import AgentState, PlanStep

STATUS_MARK = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}


def build_reminder(objective: str, plan: list[PlanStep], steps: int, max_steps: int) -> str:
    lines = ["Reminder — stay on the objective until it is done.", f"Objective: {objective}"]
    if plan:
        lines.append("Plan:")
        lines += [
            f"  {n}. {STATUS_MARK[item['status']]} {item['step']}"
            for n, item in enumerate(plan, start=1)
        ]
    else:
        lines.append("Plan: none yet (call update_plan for work with several steps).")
    lines.append(f"Progress: {steps} of {max_steps} model steps used.")
    return "\n".join(lines)


def make_remind_node(max_steps: int) -> Any:
    """The `remind` node. A new user request (a message id not seen before) starts a
    fresh objective, plan, step count and route; otherwise the current ones carry on."""

    def remind(state: AgentState) -> dict[str, Any]:
        messages = state.get("messages", [])
        index = last_request_index(messages)
        if index is None:
            raise ValueError("the run has no user request: send a human message first")
        request = messages[index]
        update: dict[str, Any] = {}
        if request.id != state.get("request_id"):
            update = {
                "request_id": request.id,
                "objective": text_of(request),
                "plan": [],
                "steps": 0,
                "route": None,
                "reasks": {},
                "results": [],
                "candidate": None,
                "feedback": None,
                "escalation": None,
                "status": "running",
                "answer": None,
                "error": None,
            }
        current: dict[str, Any] = {**state, **update}
        update["reminder"] = build_reminder(
            current["objective"], current.get("plan", []), current.get("steps", 0), max_steps
        )
        return update

    return remind
