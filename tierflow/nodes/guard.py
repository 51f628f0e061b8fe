"""The `guard:<name>` node: one guardrail on the path from a final answer to END."""

from __future__ import annotations

from typing import Any, Literal

from tierflow.guardrails.base import Guardrail
from tierflow.nodes.state import AgentState, GuardRecord

GuardOutcome = Literal["pass", "reask", "refuse"]


def make_guard_node(guardrail: Guardrail, is_last: bool) -> Any:
    """Pass: the (possibly repaired) candidate moves on, and the last guard finishes the
    run. Fail: the reason goes back to the model while reasks remain, then `refused`."""

    def guard(state: AgentState) -> dict[str, Any]:
        candidate = state.get("candidate") or ""
        verdict = guardrail.check(candidate, state)
        record = GuardRecord(
            guard=guardrail.name, ok=verdict.ok, reason=verdict.reason, step=state.get("steps", 0)
        )
        update: dict[str, Any] = {"verdicts": [record]}
        if verdict.ok:
            passed = verdict.fixed if verdict.fixed is not None else candidate
            update["candidate"] = passed
            if is_last:
                update |= {"status": "done", "answer": passed}
            return update
        reasks = dict(state.get("reasks") or {})
        used = reasks.get(guardrail.name, 0)
        if used < guardrail.max_reasks:
            reasks[guardrail.name] = used + 1
            update |= {
                "reasks": reasks,
                "candidate": None,
                "feedback": (
                    f"Your answer was not accepted by the {guardrail.name!r} check: "
                    f"{verdict.reason}. Answer again, fixing exactly this "
                    f"(attempt {used + 2} of {guardrail.max_reasks + 1})."
                ),
            }
            return update
        update |= {
            "status": "refused",
            "answer": guardrail.refusal,
            "error": f"guard {guardrail.name!r} failed {used + 1} times: {verdict.reason}",
        }
        return update

    return guard


def guard_outcome(state: AgentState) -> GuardOutcome:
    if state.get("status") == "refused":
        return "refuse"
    if state.get("feedback"):
        return "reask"
    return "pass"
