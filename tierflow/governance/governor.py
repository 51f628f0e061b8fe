"""The control point of one run: the calls `act`, `model` and the runner make.

A `Governor` is built per run (thread) from the agent's `Policy`, the run's
`Principal` and the process's shared `Capacity`. It applies the primitives in the
order DESIGN.md gives — permission, approval, budget, capacity — and writes an audit
row for every decision. It keeps nothing between calls but what it was built with;
everything it remembers is in the runs database.

Tool calls (`act`), for every call of the turn before any runs:

    verdict = governor.authorize_tool(call, turn=calls, tool_scopes=scopes)
                                              # denied: verdict.message is the observation
                                              # needs_approval: hold it, interrupt()
    outcome = governor.reviewed(call, decision)        # after interrupt() returns
    result = governor.execute_tool(call, run)          # or aexecute_tool

Model calls (`model:TIER`):

    held = governor.reserve_model(estimate=Spend(...), step=..., model=...)
    # a BudgetExceeded: end the run `budget_exceeded` (resumable once budget is raised)
    governor.settle_model(held, actual=Spend(...), step=...)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierflow.errors import BudgetExceeded
from tierflow.governance.approval import needs_approval
from tierflow.governance.audit import AuditDecision, AuditLog, AuditRecord, Outcome
from tierflow.governance.budget import (
    Budgets,
    Reservation,
    Spend,
    principal_key,
    run_key,
    tenant_key,
)
from tierflow.governance.calls import GovernedCall, RunTool, RunToolAsync, ToolVerdict
from tierflow.governance.cumulative import Cumulative, Whose
from tierflow.governance.flows import Flows, flow_denial_message
from tierflow.governance.gate import OnWait, WaitEvent
from tierflow.governance.limits import Capacity
from tierflow.governance.permissions import check, denial_message
from tierflow.governance.policy import Policy, Principal
from tierflow.governance.redact import RedactingSerializer
from tierflow.governance.reviews import Reviews, review_outcome
from tierflow.governance.side_effects import Attempt, CallSite, RecordedResult, SideEffects
from tierflow.governance.tables import utc_now
from tierflow.testing.faults import crash_point


@dataclass
class _WaitTracker:
    """Forwards wait events and remembers whether this call had to wait."""

    forward: OnWait | None
    waited: bool = field(default=False)

    def __call__(self, event: WaitEvent) -> None:
        self.waited = True
        if self.forward is not None:
            self.forward(event)


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
        timer: Callable[[], float] = time.monotonic,
        extra_budgets: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy
        self.extra_budgets = extra_budgets  # a workflow step's own, say
        self.agent = agent
        self.thread = thread
        self.principal = principal
        self.capacity = capacity or Capacity(policy.limits)
        self.redactor = policy.redaction
        self.timer = timer
        self.audit_log = AuditLog(db, redactor=self.redactor, clock=clock)
        self.budgets = Budgets(db, clock=clock)
        self.side_effects = SideEffects(db, redactor=self.redactor, clock=clock)
        self.reviews = Reviews(db, redactor=self.redactor, clock=clock)
        self.grants = policy.grants + (principal.grants if principal else ())
        whose = Whose(thread, principal.id, principal.tenant) if principal else Whose(thread)
        self.cumulative = Cumulative(policy.approvals, db, whose=whose, clock=clock)
        self.flows = Flows(policy.flows, policy.untrusted_tools, db, thread=thread)

    # -- the run ---------------------------------------------------------------------

    def start_run(self) -> None:
        """At every start and resume of the thread by its lease holder: set the run's
        declared budget and close reservations a dead process left open."""
        self.declare_budgets()
        self.budgets.abandon_open(self.thread)

    def declare_budgets(self) -> None:
        """Set the run's declared budget (kept if it was raised since): at every new
        request, however the run was started."""
        if self.policy.run_budget_usd is not None or self.policy.run_budget_tokens is not None:
            self.budgets.ensure_limit(
                run_key(self.thread),
                usd=self.policy.run_budget_usd,
                tokens=self.policy.run_budget_tokens,
            )

    def budget_keys(self) -> tuple[str, ...]:
        """The budgets a model call of this run is charged to."""
        keys = [run_key(self.thread)]
        if self.principal is not None:
            keys.append(principal_key(self.principal.id))
            if self.principal.tenant is not None:
                keys.append(tenant_key(self.principal.tenant))
        return (*keys, *self.extra_budgets)

    def serializer(self) -> RedactingSerializer:
        """A checkpoint serializer that masks this policy's secrets."""
        return RedactingSerializer(self.redactor)

    # -- tool calls ------------------------------------------------------------------

    def authorize_tool(
        self,
        call: GovernedCall,
        *,
        turn: Sequence[GovernedCall] = (),
        tool_scopes: Mapping[str, str | None] | None = None,
    ) -> ToolVerdict:
        """Permission, then flow rules, then approval rules — per call, cumulative and
        the flow rules' holds, every reason given. `turn`: the calls of the model turn
        that may run (cumulative rules count them before any runs); `tool_scopes`: the
        agent's tools and their scopes (to find what ran of a rule's scope). A denial is
        audited here; an allowed call when it has run, a held one when it is reviewed."""
        decision = check(call.scope, self.grants)
        if not decision.allowed:
            self.tool_audited(call, "denied", "not_run", reason=decision.reason)
            message = denial_message(call.tool, decision)
            return ToolVerdict("denied", decision.reason, call.scope, message)
        this_turn = {c.call_id for c in (*turn, call)}
        flow = self.flows.check(call.scope, call.arguments, step=call.step, call_ids=this_turn)
        if flow is not None and flow.action == "deny":
            self.tool_audited(call, "denied", "not_run", reason=flow.reason)
            message = flow_denial_message(call.tool, flow.reason)
            return ToolVerdict("denied", flow.reason, call.scope, message)
        held = needs_approval(self.policy.approvals, call.scope, call.arguments)
        reasons = [] if held is None else [held.reason]
        reasons += self.cumulative.holds(call, turn, tool_scopes)
        reasons += [] if flow is None else [flow.reason]
        if reasons:
            reason = "; ".join(reasons)
            message = f"Held for human approval: {reason}."
            return ToolVerdict("needs_approval", reason, call.scope, message)
        return ToolVerdict("allowed", decision.reason, call.scope)

    def reviewed(self, call: GovernedCall, decision: Mapping[str, Any]) -> AuditDecision:
        """A reviewer's decision on a held call (what `interrupt()` returned): "approved"
        (run it with `execute_tool(..., decision="approved")`) or "rejected" (audited
        here; don't run it)."""
        outcome = review_outcome(decision)
        if outcome == "rejected":
            reason = str(decision.get("reason") or "rejected by a reviewer")
            self.tool_audited(call, "rejected", "not_run", reason=reason)
        return outcome

    def recorded_review(self, held: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The reviewer's recorded decision on these held calls, if this thread has one
        (a resume after a crash doesn't ask again)."""
        decision = self.reviews.recorded(self.thread, [str(call["call_id"]) for call in held])
        if decision is not None:  # its audit rows too, if a crash came between the two
            self._audit_review(held, decision)
        return decision

    def record_review(self, held: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> None:
        """Write the reviewer's decision on the held calls — before any of them runs —
        and an audit row naming the reviewer for each."""
        self.reviews.record(self.thread, held, decision)
        self._audit_review(held, decision)
        crash_point("review.recorded")

    def _audit_review(self, held: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> None:
        outcome = review_outcome(decision)
        reviewer = decision.get("reviewer") or "unknown reviewer"
        why = decision.get("reason")
        for call in held:
            self.audit_log.write(
                AuditRecord(
                    event=f"review:{self.thread}:{call['call_id']}",
                    thread=self.thread,
                    step=-1,
                    principal=self.principal.id if self.principal else None,
                    agent=self.agent,
                    kind="review",
                    name=str(call["tool"]),
                    call_id=str(call["call_id"]),
                    arguments=call.get("arguments"),
                    decision=outcome,
                    outcome="ok",
                    reason=f"{outcome} by {reviewer}" + (f": {why}" if why else ""),
                )
            )

    def execute_tool(
        self,
        call: GovernedCall,
        run: RunTool,
        *,
        decision: AuditDecision = "allowed",
        on_wait: OnWait | None = None,
    ) -> RecordedResult | None:
        """Run an authorized call: take its concurrency slots, run it once (a
        side-effecting call's recorded outcome is returned instead of running it
        again), audit it. None when `run` timed out."""
        waits = _WaitTracker(on_wait)
        started = self.timer()
        with self.capacity.tool_call(call.tool, on_wait=waits):
            if call.idempotency_key is None:
                result = run(1)
            else:
                result = self.side_effects.once(
                    call.idempotency_key, self._site(call), lambda attempt: run(attempt.attempt)
                )
        self._finished(call, result, decision, waits.waited, self.timer() - started)
        return result

    async def aexecute_tool(
        self,
        call: GovernedCall,
        run: RunToolAsync,
        *,
        decision: AuditDecision = "allowed",
        on_wait: OnWait | None = None,
    ) -> RecordedResult | None:
        """The async twin of `execute_tool`: it never blocks the event loop — the slots
        are waited for on the loop, `on_wait` and every database write (the side-effect
        record, the audit row) run in a worker thread."""
        waits = _WaitTracker(on_wait)
        started = self.timer()
        async with self.capacity.atool_call(call.tool, on_wait=waits):
            if call.idempotency_key is None:
                result = await run(1)
            else:

                async def keyed(attempt: Attempt) -> RecordedResult | None:
                    return await run(attempt.attempt)

                result = await self.side_effects.aonce(
                    call.idempotency_key, self._site(call), keyed
                )
        latency_s = self.timer() - started
        await asyncio.to_thread(self._finished, call, result, decision, waits.waited, latency_s)
        return result

    def _site(self, call: GovernedCall) -> CallSite:
        return CallSite(thread=self.thread, step=call.step, call_id=call.call_id, tool=call.tool)

    def _finished(
        self,
        call: GovernedCall,
        result: RecordedResult | None,
        decision: AuditDecision,
        waited: bool,
        latency_s: float,
    ) -> None:
        if decision == "allowed" and waited:
            decision = "waited"
        outcome: Outcome = "timeout" if result is None else ("ok" if result.ok else "error")
        reason = "" if result is None or result.ok else result.content
        self.tool_audited(call, decision, outcome, reason=reason, latency_s=latency_s)

    def tool_audited(
        self,
        call: GovernedCall,
        decision: AuditDecision,
        outcome: Outcome,
        *,
        reason: str = "",
        latency_s: float | None = None,
    ) -> None:
        """Write the audit row of a tool call (for calls `act` settles itself)."""
        self.audit_log.write(
            AuditRecord(
                event=f"tool:{self.thread}:{call.step}:{call.call_id}:{decision}",
                thread=self.thread,
                step=call.step,
                principal=self.principal.id if self.principal else None,
                agent=self.agent,
                kind="tool",
                name=call.tool,
                call_id=call.call_id,
                arguments=call.arguments,
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
            self._model_row(step, model, "denied", "not_run", reason=held.reason)
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
        """Record the call's real cost, release the rest of its hold, and audit it."""
        self.budgets.settle(reservation, actual)
        self._model_row(
            step,
            reservation.label,
            decision,
            outcome,
            reason=reason,
            event=f"model:{reservation.id}",
            latency_s=latency_s,
            spent=actual,
        )

    def _model_row(
        self,
        step: int,
        model: str,
        decision: AuditDecision,
        outcome: Outcome,
        *,
        reason: str,
        event: str | None = None,
        latency_s: float | None = None,
        spent: Spend | None = None,
    ) -> None:
        self.audit_log.write(
            AuditRecord(
                event=event,
                thread=self.thread,
                step=step,
                principal=self.principal.id if self.principal else None,
                agent=self.agent,
                kind="model",
                name=model,
                decision=decision,
                outcome=outcome,
                reason=reason,
                latency_s=latency_s,
                tokens=None if spent is None else spent.tokens,
                cost_usd=None if spent is None else spent.usd,
            )
        )
