"""The `guard:<name>` node: one guardrail on the path from a final answer to END.

A pass moves the candidate on (the last guard finishes the run). A failure follows the
guardrail's `on_fail` policy; reask and escalate are bounded by `max_reasks`, after which
the run ends `refused`. Every verdict, pass or fail, is recorded in state.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from langgraph.types import interrupt

from tierflow.guardrails.base import Guardrail, Verdict
from tierflow.nodes.state import AgentState, GuardRecord, GuardUpdate

GuardOutcome = Literal["pass", "reask", "escalate", "refuse"]


class ReviewRequest(TypedDict):
    """What an `interrupt` guard shows the human reviewer."""

    kind: Literal["guard_review"]
    guard: str
    reason: str
    candidate: str


class ReviewDecision(TypedDict, total=False):
    """The reviewer's answer: approve, reject (with a reason), or edit (a new answer)."""

    action: Literal["approve", "reject", "edit"]
    reason: str
    answer: str


def make_guard_node(guardrail: Guardrail, is_last: bool, *, strongest_tier: str) -> Any:
    """`strongest_tier`: escalation from it is impossible, so it falls back to reask."""

    def record(state: AgentState, verdict: Verdict, policy: str) -> GuardRecord:
        return GuardRecord(
            guard=guardrail.name,
            ok=verdict.ok,
            reason=verdict.reason,
            step=state.get("steps", 0),
            policy=policy,
        )

    def passed(candidate: str) -> GuardUpdate:
        update = GuardUpdate(candidate=candidate)
        if is_last:
            update |= GuardUpdate(status="done", answer=candidate)
        return update

    def refused(reason: str) -> GuardUpdate:
        return GuardUpdate(
            status="refused",
            answer=guardrail.refusal,
            error=f"guard {guardrail.name!r} {reason}",
        )

    def retry(state: AgentState, verdict: Verdict, escalate: bool) -> GuardUpdate:
        reasks = dict(state.get("reasks") or {})
        used = reasks.get(guardrail.name, 0)
        if used >= guardrail.max_reasks:
            return refused(f"failed {used + 1} times: {verdict.reason}")
        reasks[guardrail.name] = used + 1
        update = GuardUpdate(
            reasks=reasks,
            candidate=None,
            feedback=(
                f"Your answer was not accepted by the {guardrail.name!r} check: "
                f"{verdict.reason}. Answer again, fixing exactly this "
                f"(attempt {used + 2} of {guardrail.max_reasks + 1})."
            ),
        )
        if escalate:
            update["escalation"] = f"guard {guardrail.name!r} failed: {verdict.reason}"
        return update

    def review(candidate: str, verdict: Verdict) -> GuardUpdate:
        # interrupt() re-runs this node from its top on resume; the check before it is
        # deterministic and side-effect free, so running it twice is harmless.
        decision: ReviewDecision = interrupt(
            ReviewRequest(
                kind="guard_review",
                guard=guardrail.name,
                reason=verdict.reason,
                candidate=candidate,
            )
        )
        action = decision.get("action")
        if action == "approve":
            return passed(candidate)
        if action == "edit" and decision.get("answer"):
            return passed(str(decision["answer"]))
        return refused(f"rejected by the reviewer: {decision.get('reason') or 'no reason given'}")

    def guard(state: AgentState) -> GuardUpdate:
        candidate = state.get("candidate") or ""
        verdict = guardrail.check(candidate, state)
        policy = "pass" if verdict.ok else guardrail.on_fail
        if verdict.ok:
            moved_on = verdict.fixed if verdict.fixed is not None else candidate
            return GuardUpdate(verdicts=[record(state, verdict, policy)]) | passed(moved_on)
        if policy == "fix" and verdict.fixed is None:
            policy = "reask"  # nothing to repair with: let the model fix it
        route = state.get("route")
        if policy == "escalate" and (route is None or route["tier"] == strongest_tier):
            policy = "reask"
        if policy == "fix" and verdict.fixed is not None:
            outcome = passed(verdict.fixed)
        elif policy == "refuse":
            outcome = refused(f"failed: {verdict.reason}")
        elif policy == "interrupt":
            outcome = review(candidate, verdict)
        else:
            outcome = retry(state, verdict, escalate=policy == "escalate")
            if outcome.get("status") == "refused":
                policy = "refuse"  # retries spent
        return GuardUpdate(verdicts=[record(state, verdict, policy)]) | outcome

    return guard


def guard_outcome(state: AgentState) -> GuardOutcome:
    if state.get("status") == "refused":
        return "refuse"
    if state.get("escalation"):
        return "escalate"
    if state.get("feedback"):
        return "reask"
    return "pass"
