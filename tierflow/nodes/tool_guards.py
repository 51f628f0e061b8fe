"""Before a turn's tools run: argument guardrails, authorisation, the review pause.

A failing guardrail blocks the call (the reason is the model's observation), repairs it
(`on_fail="fix"` with a `fixed` value), or holds it for a human (`on_fail="interrupt"`).
Then the governor authorises each call once, on the arguments the guards left, with the
turn in view: a denial replaces whatever the guards said (the call is treated as never
screened: no guard records), an approval rule holds the call — joined with a guard's
hold — in the turn's one review pause. All of it happens before any tool of the turn
runs, so a review pause (which re-runs the node) never repeats work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tierflow.governance.audit import AuditDecision
from tierflow.governance.calls import GovernedCall, ToolVerdict
from tierflow.governance.reviews import HeldCall, rejection_reason, review_held, review_outcome
from tierflow.governance.ungoverned import ToolGovernor
from tierflow.nodes.state import AgentState, GuardRecord, ToolResult
from tierflow.tools.arguments import ArgumentsInvalid, ToolContext
from tierflow.tools.declare import ALL_ARGUMENTS, Tool


@dataclass(frozen=True)
class Prepared:
    """One tool call with validated arguments: the tool, the keyword arguments it is
    called with (the `ToolContext` among them if it takes one), its context, and the
    call as governance sees it (built once, with the arguments the model sent)."""

    tool: Tool
    kwargs: dict[str, Any]
    context: ToolContext
    call: GovernedCall

    @classmethod
    def of(cls, tool: Tool, kwargs: dict[str, Any], context: ToolContext) -> Prepared:
        arguments = tool.arguments_of(kwargs)
        call = GovernedCall(
            tool=tool.name,
            scope=tool.scope,
            arguments=arguments,
            step=context.step,
            call_id=context.call_id,
            # a result that can be held is recorded too: the review's resume mustn't rerun it
            idempotency_key=context.idempotency_key
            if tool.side_effects or tool.holds_results
            else None,
        )
        return cls(tool, kwargs, context, call)

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments the model sent (without the injected `ToolContext`)."""
        return dict(self.call.arguments)

    def with_kwargs(self, kwargs: dict[str, Any]) -> Prepared:
        return Prepared.of(self.tool, kwargs, self.context)

    def result(self, content: str, *, ok: bool = False) -> ToolResult:
        """A result of this call (an error unless `ok`)."""
        return ToolResult(call_id=self.context.call_id, name=self.tool.name, ok=ok, content=content)


@dataclass(frozen=True)
class Screened:
    """A call after its checks, with the arguments they left: ready to run, `blocked`
    (the result the model reads instead), or `held` for review."""

    prepared: Prepared
    records: list[GuardRecord]
    blocked: ToolResult | None = None
    held: HeldCall | None = None


@dataclass(frozen=True)
class Cleared:
    """A call that may run, and the audit decision it runs under."""

    prepared: Prepared
    decision: AuditDecision = "allowed"


# --- the turn -------------------------------------------------------------------------


def checked(
    state: AgentState,
    work: Sequence[Prepared | ToolResult],
    governor: ToolGovernor,
    scopes: Mapping[str, str | None],
) -> tuple[list[Cleared | ToolResult], list[GuardRecord]]:
    """Every call of the turn after its guardrails, its authorisation and the review
    pause, before any runs, and the guards' records. `work`: the turn's calls (a result
    for one that can't run); `scopes`: the agent's tools and their scopes. One review
    pause for every call held for a human (interrupt() re-runs this node: nothing has
    run yet, and the audit log ignores the repeated rows)."""
    screened = [screen(item, state) if isinstance(item, Prepared) else item for item in work]
    turn = [e.prepared.call for e in screened if isinstance(e, Screened) and e.blocked is None]
    screened = [
        authorized(governor, entry, turn, scopes) if isinstance(entry, Screened) else entry
        for entry in screened
    ]
    entries = [entry for entry in screened if isinstance(entry, Screened)]
    decisions = review_held([entry.held for entry in entries if entry.held is not None], governor)
    cleared = [
        reviewed(entry, decisions, governor) if isinstance(entry, Screened) else entry
        for entry in screened
    ]
    return cleared, [record for entry in entries for record in entry.records]


def authorized(
    governor: ToolGovernor,
    entry: Screened,
    turn: Sequence[GovernedCall],
    scopes: Mapping[str, str | None],
) -> Screened:
    """A screened call after the governor's one decision on it — on the arguments the
    guards left, with the turn's calls that may run: denied (the denial is all the model
    reads, and all that is recorded), held for review, or as it was. A blocked call is
    authorised too: a permission denial is what it meets first."""
    verdict = governor.authorize_tool(entry.prepared.call, turn=turn, tool_scopes=scopes)
    if verdict.verdict == "denied":
        return Screened(entry.prepared, [], entry.prepared.result(verdict.message))
    if verdict.verdict == "needs_approval" and entry.blocked is None:
        return replace(entry, held=held_for_approval(entry, verdict))
    return entry


def held_for_approval(entry: Screened, verdict: ToolVerdict) -> HeldCall:
    """The review entry of a call an approval rule holds (joined with a guard's hold)."""
    approval = f"approval:{verdict.scope}"
    if entry.held is None:
        return HeldCall(
            tool=entry.prepared.tool.name,
            call_id=entry.prepared.context.call_id,
            arguments=entry.prepared.arguments,
            guard=approval,
            reason=verdict.reason,
            held_by=["approval"],
        )
    return HeldCall(
        tool=entry.held["tool"],
        call_id=entry.held["call_id"],
        arguments=entry.held["arguments"],
        guard=f"{entry.held['guard']}, {approval}",
        reason=f"{entry.held['reason']}; {verdict.reason}",
        held_by=[*entry.held["held_by"], "approval"],
    )


def reviewed(
    entry: Screened, decisions: Mapping[str, Mapping[str, Any]], governor: ToolGovernor
) -> Cleared | ToolResult:
    """A screened call after the review pause (`decisions`: by held call id): cleared
    to run, or its result."""
    if entry.blocked is not None:
        return entry.blocked
    if entry.held is None:
        return Cleared(entry.prepared)
    decision = decisions[entry.held["call_id"]]
    held_by_rule = "approval" in entry.held["held_by"]
    if held_by_rule:
        outcome = governor.reviewed(entry.prepared.call, decision)  # audits a rejection
    else:
        outcome = review_outcome(decision)
    if outcome == "approved":
        return Cleared(entry.prepared, "approved" if held_by_rule else "allowed")
    why = rejection_reason(decision)
    return entry.prepared.result(f"Rejected by a human reviewer: {why}. Do not retry it.")


# --- one call's guardrails --------------------------------------------------------------


def screen(prepared: Prepared, state: AgentState) -> Screened:
    """Run the tool's argument guardrails in declaration order."""
    tool = prepared.tool
    records: list[GuardRecord] = []
    for argument, guard in tool.guards.items():
        candidate = (
            json.dumps(prepared.arguments, default=str, sort_keys=True)
            if argument == ALL_ARGUMENTS
            else str(prepared.kwargs[argument])
        )
        verdict = guard.check(candidate, state)
        label = f"{tool.name}:{guard.name}"
        what = "its arguments" if argument == ALL_ARGUMENTS else f"argument {argument!r}"
        repaired = (
            _with_fix(prepared, argument, verdict.fixed) if verdict.fixed is not None else None
        )
        if verdict.ok:
            policy = "pass"
            prepared = prepared if repaired is None else repaired
        elif guard.on_fail == "fix" and repaired is not None:
            policy = "fix"
            prepared = repaired
        elif guard.on_fail == "interrupt":
            policy = "interrupt"
        else:
            policy = "block"  # reask, escalate, refuse — or a fix that doesn't fit
        records.append(
            GuardRecord(
                guard=label,
                ok=verdict.ok,
                reason=verdict.reason,
                step=state.get("steps", 0),
                policy=policy,
            )
        )
        if policy == "block":
            refusal = (
                f"Blocked before running: the {guard.name!r} check rejected {what} of "
                f"{tool.name}: {verdict.reason}. Change the call and try again."
            )
            return Screened(prepared, records, blocked=prepared.result(refusal))
        if policy == "interrupt":
            held = HeldCall(
                tool=tool.name,
                call_id=prepared.context.call_id,
                arguments=prepared.arguments,
                guard=label,
                reason=verdict.reason,
                held_by=["guard"],
            )
            return Screened(prepared, records, held=held)
    return Screened(prepared, records)


def _with_fix(prepared: Prepared, argument: str, fixed: str) -> Prepared | None:
    """The call with the guard's repair applied, re-validated; None if invalid."""
    tool = prepared.tool
    arguments = prepared.arguments
    try:
        if argument == ALL_ARGUMENTS:
            replaced = json.loads(fixed)
            if not isinstance(replaced, dict):
                return None
            arguments = replaced
        else:
            arguments[argument] = fixed
        repaired = tool.bind(arguments)
    except (ArgumentsInvalid, json.JSONDecodeError):
        return None
    filled = tool.injected.names()
    repaired |= {name: value for name, value in prepared.kwargs.items() if name in filled}
    return prepared.with_kwargs(repaired)
