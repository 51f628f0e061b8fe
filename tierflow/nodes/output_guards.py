"""Guardrails after a tool runs: its result is checked before the model reads it.

A tool's `output_guards` map a field of its result (a JSON object) — or "*", the whole
result — to a guardrail; they run in declaration order, each on the text the ones
before it left. A failing check, by the guard's `on_fail`:

- `fix` — **mask**: the verdict's `fixed` text replaces the checked text (the PII guard's
  masks, the injection guard's cut), if the fix passes the same guard; otherwise refuse;
- `interrupt` — **hold**: the result is kept from the model and shown to a human in the
  turn's review pause (a `tool_review` interrupt whose entries carry `result`); approved,
  the model reads it, rejected, it reads that it was withheld. Later guards still run: a
  refusal withholds the result without asking anyone;
- anything else — **refuse**: the model reads "Result withheld: <reason>" as an error.

Every verdict is a `GuardRecord` (`<tool>:<guard>`, policy pass / mask / refuse /
interrupt) in the state's `verdicts`, and, for a governed agent, a `tool` row of the
audit log once settled.

Held results and resume. LangGraph re-runs the whole `act` node when a review pause is
answered, so the tool would run again. A governed agent records the result of every
tool that can be held (as it records a side-effecting tool's: `Prepared.of` gives it
an idempotency key), so the replay reads the recorded result and the reviewer's decision
applies to the text they saw; the decision itself is recorded before the model sees
anything. An ungoverned agent records nothing, so it can't hold a result exactly once:
there a hold is a refusal (its record says so). Results of calls that didn't run —
blocked, denied, unparseable, over the limit — are tierflow's own words and not checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tierflow.governance.audit import AuditDecision, AuditRecord, Outcome
from tierflow.governance.governor import Governor
from tierflow.governance.reviews import HeldCall, rejection_reason, review_held, review_outcome
from tierflow.governance.ungoverned import ToolGovernor
from tierflow.guardrails.base import Guardrail, Verdict
from tierflow.nodes.state import AgentState, GuardRecord, ToolResult
from tierflow.nodes.tool_guards import Prepared
from tierflow.tools.declare import ALL_ARGUMENTS, Tool

# A held result's review entry: `<call id>:result`, so its recorded decision is its own
# and never the one given on the call's arguments before it ran.
RESULT_REVIEW = ":result"
UNGOVERNED_HOLD = "; withheld: only an agent with a policy can hold a result for review"


@dataclass(frozen=True)
class CheckedResult:
    """A result after its output guards: what the model reads (unless held), the
    verdicts, and the review entry when a guard holds it."""

    result: ToolResult
    records: list[GuardRecord]
    held: HeldCall | None = None
    withheld: bool = False


def guard_results(
    state: AgentState,
    ran: Sequence[Prepared | None],
    results: Sequence[ToolResult],
    governor: ToolGovernor,
    *,
    answered_first: bool = False,
) -> tuple[list[ToolResult], list[GuardRecord]]:
    """The turn's results as the model may read them, and the verdicts on them. `ran`
    pairs each result with the call that produced it (None: tierflow wrote it). Held
    results pause the turn once; `answered_first` says the turn's review before running
    was answered from its record (see `answered_from_record`). Only a `Governor`
    records, so only a governed agent holds results and audits the verdicts."""
    durable = isinstance(governor, Governor)
    checked = [
        check_result(call, result, state, can_hold=durable)
        if call is not None and call.tool.output_guards
        else CheckedResult(result, [])
        for call, result in zip(ran, results, strict=True)
    ]
    held = [entry.held for entry in checked if entry.held is not None]
    decisions = review_held(held, governor, answered_before=answered_first)
    final = [_reviewed(entry, decisions) for entry in checked]
    if isinstance(governor, Governor):
        _audit(governor, ran, checked, decisions)
    return final, [record for entry in checked for record in entry.records]


def check_result(
    call: Prepared, result: ToolResult, state: AgentState, *, can_hold: bool
) -> CheckedResult:
    """Run a call's output guards on its result, in declaration order."""
    tool = call.tool
    text = result["content"]
    records: list[GuardRecord] = []
    labels: list[str] = []
    reasons: list[str] = []
    for key, guard in tool.output_guards.items():
        candidate, put = _target(text, key)
        verdict = guard.check(candidate, state)
        repaired = put(verdict.fixed) if verdict.fixed is not None else None
        reason = verdict.reason
        if verdict.ok:
            policy = "pass"
            text = text if repaired is None else repaired
        elif (
            guard.on_fail == "fix" and repaired is not None and _passes(guard, repaired, key, state)
        ):
            policy = "mask"
            text = repaired
        elif guard.on_fail == "interrupt" and can_hold:
            policy = "interrupt"
            labels.append(f"{tool.name}:{guard.name}")
            reasons.append(verdict.reason)
        else:
            policy = "refuse"
            if guard.on_fail == "interrupt":
                reason += UNGOVERNED_HOLD
        records.append(
            GuardRecord(
                guard=f"{tool.name}:{guard.name}",
                ok=verdict.ok,
                reason=reason,
                step=state.get("steps", 0),
                policy=policy,
            )
        )
        if policy == "refuse":
            refusal = _withheld(result, _refusal(tool, guard, verdict))
            return CheckedResult(refusal, records, withheld=True)
    shown = ToolResult(
        call_id=result["call_id"], name=result["name"], ok=result["ok"], content=text
    )
    if not labels:
        return CheckedResult(shown, records)
    held = HeldCall(
        tool=tool.name,
        call_id=f"{call.context.call_id}{RESULT_REVIEW}",
        arguments=call.arguments,
        guard=", ".join(labels),
        reason=f"its result: {'; '.join(reasons)}",
        held_by=["guard"],
        result=text,
    )
    return CheckedResult(shown, records, held)


def answered_from_record(governor: ToolGovernor, calls: Sequence[Prepared | ToolResult]) -> bool:
    """Call before `checked`: was a call of this turn reviewed before it ran, in an
    earlier run of this node? `checked` then takes that decision from its record
    without calling `interrupt()`, and the resume value that answered it is still the
    first LangGraph hands out — which the result review must not take for its own.
    (Never, without a `Governor`: nothing is recorded.)"""
    return isinstance(governor, Governor) and any(
        governor.reviews.recorded(governor.thread, [item.context.call_id]) is not None
        for item in calls
        if isinstance(item, Prepared)
    )


def _reviewed(entry: CheckedResult, decisions: Mapping[str, Mapping[str, Any]]) -> ToolResult:
    if entry.held is None or _approved(entry, decisions):
        return entry.result
    why = rejection_reason(decisions[entry.held["call_id"]])
    return _withheld(entry.result, f"Result withheld: a human reviewer rejected it: {why}.")


def _approved(entry: CheckedResult, decisions: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether the reviewer let the entry's held result through."""
    held = entry.held
    return held is not None and review_outcome(decisions[held["call_id"]]) == "approved"


def _audit(
    governor: Governor,
    ran: Sequence[Prepared | None],
    checked: Sequence[CheckedResult],
    decisions: Mapping[str, Mapping[str, Any]],
) -> None:
    """One audit row per verdict, once settled (a replayed step writes none twice)."""
    rows: list[AuditRecord] = []
    for call, entry in zip(ran, checked, strict=True):
        if call is None:
            continue
        approved = _approved(entry, decisions)
        withheld = entry.withheld or (entry.held is not None and not approved)
        for record in entry.records:
            verdict: AuditDecision = "allowed"
            if record["policy"] == "refuse":
                verdict = "denied"
            elif record["policy"] == "interrupt" and entry.held is None:
                verdict = "denied"  # a later guard refused the result: nobody was asked
            elif record["policy"] == "interrupt":
                verdict = "approved" if approved else "rejected"
            outcome: Outcome = "error" if withheld else "ok"
            note = "" if record["ok"] else f": {record['reason']}"
            rows.append(
                AuditRecord(
                    event=f"result:{governor.thread}:{call.context.step}:"
                    f"{call.context.call_id}:{record['guard']}",
                    thread=governor.thread,
                    step=call.context.step,
                    principal=governor.principal.id if governor.principal else None,
                    agent=governor.agent,
                    kind="tool",
                    name=record["guard"],
                    call_id=call.context.call_id,
                    arguments=call.arguments,
                    decision=verdict,
                    outcome=outcome,
                    reason=f"result check of {call.tool.name}: {record['policy']}{note}",
                )
            )
    governor.audit_log.write_many(rows)


def _target(text: str, key: str) -> tuple[str, Callable[[str], str]]:
    """What a guard on `key` reads, and how its fix goes back into the whole result.
    A field guard reads the field of a JSON object result; when the result is not one,
    or has no such field, it reads the whole result (checking more, never less)."""
    whole = (text, lambda fixed: fixed)
    if key == ALL_ARGUMENTS:
        return whole
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return whole
    if not isinstance(document, dict) or key not in document:
        return whole
    value = document[key]
    is_text = isinstance(value, str)
    candidate = value if is_text else json.dumps(value, ensure_ascii=False, default=str)

    def put(fixed: str) -> str:
        replaced: Any = fixed
        if not is_text:
            try:
                replaced = json.loads(fixed)
            except (ValueError, RecursionError):
                replaced = fixed
        return json.dumps({**document, key: replaced}, ensure_ascii=False, default=str)

    return candidate, put


def _passes(guard: Guardrail, repaired: str, key: str, state: AgentState) -> bool:
    """A mask is applied only if the masked text passes the guard that asked for it."""
    return guard.check(_target(repaired, key)[0], state).ok


def _refusal(tool: Tool, guard: Guardrail, verdict: Verdict) -> str:
    return f"Result withheld: {verdict.reason} (the {guard.name!r} check on {tool.name}'s result)."


def _withheld(result: ToolResult, message: str) -> ToolResult:
    return ToolResult(call_id=result["call_id"], name=result["name"], ok=False, content=message)
