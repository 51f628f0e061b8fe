"""The control point of one run: the calls `act`, `model` and the runner make.

A `Governor` is built per run (thread) from the agent's `Policy`, the run's
`Principal` and the process's shared `Capacity`. It applies the primitives in the
order DESIGN.md gives — permission, approval, budget, capacity — and writes an audit
row for every decision. It holds no state of its own beyond what it was built with;
everything it remembers is in the runs database.

    verdict = governor.authorize_tool(tool=..., scope=..., arguments=..., step=..., call_id=...)
    # denied → verdict.message is the model's observation; needs_approval → interrupt()
    with governor.capacity.tool_call(name, on_wait=...):   # or tool_call_async
        ...                                                # side_effects.once(...) if it writes
    governor.tool_finished(...)

    held = governor.reserve_model(estimate=Spend(usd, tokens), step=..., model=...)
    # BudgetExceeded → end the run `budget_exceeded`
    governor.settle_model(held, actual=Spend(...), ...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tierflow.governance.approval import needs_approval, review_outcome
from tierflow.governance.audit import AuditDecision, AuditLog, AuditRecord, Outcome
from tierflow.governance.budget import (
    Budgets,
    Reservation,
    Spend,
    principal_key,
    run_key,
    tenant_key,
)
from tierflow.governance.errors import BudgetExceeded
from tierflow.governance.limits import Capacity
from tierflow.governance.permissions import check, denial_message
from tierflow.governance.policy import Policy, Principal
from tierflow.governance.redact import RedactingSerializer
from tierflow.governance.side_effects import SideEffects
from tierflow.governance.store import utc_now

Verdict = Literal["allowed", "denied", "needs_approval"]


@dataclass(frozen=True)
class ToolVerdict:
    """Whether a tool call may run. `message` is what the model reads when it may not."""

    verdict: Verdict
    reason: str
    scope: str | None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"


class Governor:
    def __init__(
        self,
        policy: Policy,
        db: str | Path,
        *,
        agent: str,
        thread: str,
        principal: Principal | None = None,
        capacity: Capacity | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.policy = policy
        self.agent = agent
        self.thread = thread
        self.principal = principal
        self.capacity = capacity or Capacity(policy.limits)
        self.redactor = policy.redaction
        self.audit_log = AuditLog(db, redactor=self.redactor, clock=clock)
        self.budgets = Budgets(db, clock=clock)
        self.side_effects = SideEffects(db, redactor=self.redactor, clock=clock)
        self.grants = policy.grants + (principal.grants if principal else ())

    # -- the run ---------------------------------------------------------------------

    def start_run(self) -> None:
        """At every start and resume of the thread: set the run's declared budget (kept
        if it was raised since) and close reservations a dead process left open."""
        if self.policy.run_budget_usd is not None or self.policy.run_budget_tokens is not None:
            self.budgets.ensure_limit(
                run_key(self.thread),
                usd=self.policy.run_budget_usd,
                tokens=self.policy.run_budget_tokens,
            )
        self.budgets.abandon_open(self.thread)

    def budget_keys(self) -> tuple[str, ...]:
        """The budgets a model call of this run is charged to."""
        keys = [run_key(self.thread)]
        if self.principal is not None:
            keys.append(principal_key(self.principal.id))
            if self.principal.tenant is not None:
                keys.append(tenant_key(self.principal.tenant))
        return tuple(keys)

    def serializer(self) -> RedactingSerializer:
        """A checkpoint serializer that masks this policy's secrets."""
        return RedactingSerializer(self.redactor)

    # -- tool calls ------------------------------------------------------------------

    def authorize_tool(
        self,
        *,
        tool: str,
        scope: str | None,
        arguments: Mapping[str, Any],
        step: int,
        call_id: str,
    ) -> ToolVerdict:
        """Permission, then approval rules. A denial is audited here; an allowed call is
        audited when it finishes (`tool_finished`), a held one when it is reviewed."""
        decision = check(scope, self.grants)
        if not decision.allowed:
            verdict = ToolVerdict("denied", decision.reason, scope, denial_message(tool, decision))
            self._tool_row(
                tool,
                arguments,
                step=step,
                call_id=call_id,
                decision="denied",
                outcome="not_run",
                reason=decision.reason,
            )
            return verdict
        held = needs_approval(self.policy.approvals, scope, arguments)
        if held is not None:
            message = f"Held for human approval: {held.reason}."
            return ToolVerdict("needs_approval", held.reason, scope, message)
        return ToolVerdict("allowed", decision.reason, scope)

    def reviewed(
        self,
        *,
        tool: str,
        arguments: Mapping[str, Any],
        step: int,
        call_id: str,
        decision: Mapping[str, Any],
    ) -> AuditDecision:
        """A reviewer's decision on a held call (the `interrupt()` resume value):
        "approved" (run it, then `tool_finished(..., decision="approved")`) or
        "rejected" (audited here; don't run it)."""
        outcome = review_outcome(decision)
        if outcome == "rejected":
            reason = str(decision.get("reason") or "rejected by a reviewer")
            self._tool_row(
                tool,
                arguments,
                step=step,
                call_id=call_id,
                decision="rejected",
                outcome="not_run",
                reason=reason,
            )
        return outcome

    def tool_finished(
        self,
        *,
        tool: str,
        arguments: Mapping[str, Any],
        step: int,
        call_id: str,
        outcome: Outcome,
        decision: AuditDecision = "allowed",
        latency_s: float | None = None,
        reason: str = "",
    ) -> None:
        """Audit a call that ran: `decision` is "waited" if it queued for a slot,
        "approved" if a reviewer let it through."""
        self._tool_row(
            tool,
            arguments,
            step=step,
            call_id=call_id,
            decision=decision,
            outcome=outcome,
            reason=reason,
            latency_s=latency_s,
        )

    def _tool_row(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        step: int,
        call_id: str,
        decision: AuditDecision,
        outcome: Outcome,
        reason: str,
        latency_s: float | None = None,
    ) -> None:
        self.audit_log.write(
            AuditRecord(
                event=f"tool:{self.thread}:{step}:{call_id}:{decision}",
                thread=self.thread,
                step=step,
                principal=self.principal.id if self.principal else None,
                agent=self.agent,
                kind="tool",
                name=tool,
                call_id=call_id,
                arguments=arguments,
                decision=decision,
                outcome=outcome,
                reason=reason,
                latency_s=latency_s,
            )
        )

    # -- model calls -----------------------------------------------------------------

    def reserve_model(
        self, *, estimate: Spend, step: int, model: str
    ) -> Reservation | BudgetExceeded:
        """Hold the call's estimated maximum on every budget of this run; a refusal is
        audited and returned (end the run `budget_exceeded`, resumable once raised)."""
        held = self.budgets.reserve(self.budget_keys(), estimate, thread=self.thread, label=model)
        if isinstance(held, BudgetExceeded):
            self.audit_log.write(
                AuditRecord(
                    thread=self.thread,
                    step=step,
                    principal=self.principal.id if self.principal else None,
                    agent=self.agent,
                    kind="model",
                    name=model,
                    decision="denied",
                    outcome="not_run",
                    reason=held.reason,
                )
            )
        return held

    def settle_model(
        self,
        reservation: Reservation,
        *,
        actual: Spend,
        step: int,
        outcome: Outcome = "ok",
        decision: AuditDecision = "allowed",
        latency_s: float | None = None,
        reason: str = "",
    ) -> None:
        """Record the call's real cost, release the rest, and audit it."""
        self.budgets.settle(reservation, actual)
        self.audit_log.write(
            AuditRecord(
                event=f"model:{reservation.id}",
                thread=self.thread,
                step=step,
                principal=self.principal.id if self.principal else None,
                agent=self.agent,
                kind="model",
                name=reservation.label,
                decision=decision,
                outcome=outcome,
                reason=reason,
                latency_s=latency_s,
                tokens=actual.tokens,
                cost_usd=actual.usd,
            )
        )
