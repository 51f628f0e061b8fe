"""The `guard:<name>` node: one guardrail on the path from a final answer to END.

A pass moves the candidate on (the last guard finishes the run). A failure follows the
guardrail's `on_fail` policy; reask and escalate are bounded by `max_reasks`, after which
the run ends `refused`. Every verdict, pass or fail, is recorded in state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tierflow.governance.reviews import Rejected, review_answer
from tierflow.guardrails.base import Guardrail, Verdict
from tierflow.nodes.state import AgentState, GuardRecord, GuardUpdate
from tierflow.routing.ladder import next_stronger

GuardOutcome = Literal["pass", "reask", "escalate", "refuse"]


def make_guard_node(guardrail: Guardrail, is_last: bool, *, ladder: Sequence[str]) -> Any:
    """The node of `guardrail`. `is_last`: a pass finishes the run. `ladder`: the
    agent's tiers, cheapest first — on the strongest, escalation falls back to reask."""
    return GuardNode(guardrail, is_last, tuple(ladder)).run


@dataclass(frozen=True)
class GuardNode:
    """One guardrail's node (see `make_guard_node`)."""

    guardrail: Guardrail
    is_last: bool
    ladder: tuple[str, ...]

    def run(self, state: AgentState) -> GuardUpdate:
        candidate = state.get("candidate") or ""
        verdict = self.guardrail.check(candidate, state)
        policy, outcome = self.decide(state, candidate, verdict)
        return GuardUpdate(verdicts=[self.record(state, verdict, policy)]) | outcome

    def decide(
        self, state: AgentState, candidate: str, verdict: Verdict
    ) -> tuple[str, GuardUpdate]:
        """The policy the verdict is recorded under, and where it moves the run."""
        if verdict.ok:
            return "pass", self.passed(verdict.fixed if verdict.fixed is not None else candidate)
        policy = self.policy(state, verdict)
        if policy == "fix" and verdict.fixed is not None:
            return policy, self.passed(verdict.fixed)
        if policy == "refuse":
            return policy, self.refused(f"failed: {verdict.reason}")
        if policy == "interrupt":
            return policy, self.reviewed(candidate, verdict)
        outcome = self.retry(state, verdict, escalate=policy == "escalate")
        if outcome.get("status") == "refused":
            return "refuse", outcome  # retries spent
        return policy, outcome

    def policy(self, state: AgentState, verdict: Verdict) -> str:
        """The guardrail's `on_fail`, or reask when it can't apply: a fix with nothing to
        repair with (let the model fix it), an escalation with no stronger tier."""
        policy: str = self.guardrail.on_fail
        if policy == "fix" and verdict.fixed is None:
            return "reask"
        route = state.get("route")
        if policy == "escalate" and (
            route is None or next_stronger(route["tier"], self.ladder) is None
        ):
            return "reask"
        return policy

    def record(self, state: AgentState, verdict: Verdict, policy: str) -> GuardRecord:
        return GuardRecord(
            guard=self.guardrail.name,
            ok=verdict.ok,
            reason=verdict.reason,
            step=state.get("steps", 0),
            policy=policy,
        )

    def passed(self, candidate: str) -> GuardUpdate:
        update = GuardUpdate(candidate=candidate)
        if self.is_last:
            update |= GuardUpdate(status="done", answer=candidate)
        return update

    def refused(self, reason: str) -> GuardUpdate:
        return GuardUpdate(
            status="refused",
            answer=self.guardrail.refusal,
            error=f"guard {self.guardrail.name!r} {reason}",
        )

    def retry(self, state: AgentState, verdict: Verdict, escalate: bool) -> GuardUpdate:
        name, limit = self.guardrail.name, self.guardrail.max_reasks
        reasks = dict(state.get("reasks") or {})
        used = reasks.get(name, 0)
        if used >= limit:
            return self.refused(f"failed {used + 1} times: {verdict.reason}")
        reasks[name] = used + 1
        update = GuardUpdate(
            reasks=reasks,
            candidate=None,
            feedback=(
                f"Your answer was not accepted by the {name!r} check: "
                f"{verdict.reason}. Answer again, fixing exactly this "
                f"(attempt {used + 2} of {limit + 1})."
            ),
        )
        if escalate:
            update["escalation"] = f"guard {name!r} failed: {verdict.reason}"
        return update

    def reviewed(self, candidate: str, verdict: Verdict) -> GuardUpdate:
        # The review pause re-runs this node from its top on resume; the check before it
        # is deterministic and side-effect free, so running it twice is harmless.
        answer = review_answer(self.guardrail.name, verdict.reason, candidate)
        if isinstance(answer, Rejected):
            return self.refused(f"rejected by the reviewer: {answer.reason}")
        return self.passed(answer)


def guard_outcome(state: AgentState) -> GuardOutcome:
    if state.get("status") == "refused":
        return "refuse"
    if state.get("escalation"):
        return "escalate"
    if state.get("feedback"):
        return "reask"
    return "pass"
