"""Human review: a run pauses for a person to approve, edit or reject, and their decision
is read here, the same way wherever it was asked for.

The protocol. A node pauses the run with `interrupt()` and a request — a
`ToolReviewRequest` (tool calls, or results, held for a human; `act`) or a
`GuardReviewRequest` (a final answer a guard holds; `guard:<name>`) — and LangGraph runs
the node again from its top when the run resumes with the reviewer's decision:
`{"action": "approve"}`, `{"action": "reject", "reason": ...}` or, for an answer,
`{"action": "edit", "answer": ...}`, with the `reviewer` who decided and (the runner adds
them) the `call_ids` they were shown. Anything but an explicit approve (or, for an
answer, an edit that carries one) is a rejection: a garbled payload must not run a call
held for a human.

Durable records. A decision on held tool calls is written — who, when, what, why —
before the approved call runs (by the governor, which audits it too), and a thread asks
a reviewer once per held call: after a crash, the resume finds the record and goes on
without asking again. Records are keyed by (thread, call id), so a fork (another
thread) never inherits its parent's approvals: its held call is reviewed again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from langgraph.types import interrupt

from tierflow.governance.records import RecordTable

ReviewOutcome = Literal["approved", "rejected"]


class HeldCall(TypedDict):
    """One call held for a human: what it would do and why — `held_by` says whether a
    guardrail (`guard` names it) or the policy's approval rule (`guard` is
    `approval:<scope>`) held it, or both; `reason` gives every reason. A call that ran
    and whose result an output guard holds carries the `result` the model would read
    (its `call_id` is the call's with `:result` appended; see `nodes/output_guards`)."""

    tool: str
    call_id: str
    arguments: dict[str, Any]
    guard: str
    reason: str
    held_by: list[Literal["guard", "approval"]]
    result: NotRequired[str]


class ToolReviewRequest(TypedDict):
    """What a reviewer is shown for a turn's held calls (or held results)."""

    kind: Literal["tool_review"]
    calls: list[HeldCall]


class GuardReviewRequest(TypedDict):
    """What a reviewer is shown for a final answer an `interrupt` guard holds."""

    kind: Literal["guard_review"]
    guard: str
    reason: str
    candidate: str


class ReviewLedger(Protocol):
    """Where a thread keeps its decisions on held calls: the run's `Governor` (durable
    and audited) or `UNGOVERNED` (nothing kept: a resume asks again)."""

    def recorded_review(self, held: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None: ...

    def record_review(
        self, held: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class Rejected:
    """A reviewer's rejection, and why (as the run's error or the model reads it)."""

    reason: str


# The decision on a call held only after the reviewer decided (the held set grew between
# the pause and the resume): nobody saw it, so it does not run.
NOT_SHOWN: Mapping[str, Any] = {
    "action": "reject",
    "reason": "held after the reviewer decided, so never reviewed",
}


# --- reading a decision ------------------------------------------------------------------


def read_decision(value: object) -> Mapping[str, Any]:
    """The reviewer's resume payload as a decision: a mapping as given, anything else a
    rejection that says what arrived."""
    if isinstance(value, Mapping):
        return value
    return {"action": "reject", "reason": f"unreadable review decision: {value!r}"}


def review_outcome(decision: Mapping[str, Any]) -> ReviewOutcome:
    """The audit decision of a reviewer's decision on held calls: only an explicit
    approve runs them."""
    return "approved" if decision.get("action") == "approve" else "rejected"


def rejection_reason(decision: Mapping[str, Any]) -> str:
    """Why the reviewer said no, in their words if they gave any."""
    return str(decision.get("reason") or "no reason given")


def reviewed_answer(decision: Mapping[str, Any], candidate: str) -> str | Rejected:
    """The final answer a reviewer lets through — the `candidate` approved, or their
    edit — or their rejection (an edit without an answer is one)."""
    action = decision.get("action")
    if action == "approve":
        return candidate
    if action == "edit" and decision.get("answer"):
        return str(decision["answer"])
    return Rejected(rejection_reason(decision))


def _not_shown(held: Sequence[HeldCall], decision: Mapping[str, Any]) -> set[str]:
    shown = decision.get("call_ids")
    if not isinstance(shown, list):  # a decision from older code or from Python: all seen
        return set()
    return {h["call_id"] for h in held if h["call_id"] not in shown}


# --- asking -------------------------------------------------------------------------------


def ask(request: ToolReviewRequest | GuardReviewRequest) -> Mapping[str, Any]:
    """Pause the run for a human and return their decision (`read_decision`). The node
    runs again from its top on resume: whatever it did before asking runs twice."""
    return read_decision(interrupt(request))


def review_answer(guard: str, reason: str, candidate: str) -> str | Rejected:
    """Ask a human about the final answer `guard` holds (for `reason`): the answer that
    goes on, or the rejection."""
    request = GuardReviewRequest(
        kind="guard_review", guard=guard, reason=reason, candidate=candidate
    )
    return reviewed_answer(ask(request), candidate)


def review_held(
    held: Sequence[HeldCall], ledger: ReviewLedger, *, answered_before: bool = False
) -> dict[str, Mapping[str, Any]]:
    """The reviewer's decision on each held call, by call id: the one `ledger` recorded
    (a resume after a crash never asks twice), or asked for in one pause and recorded
    before any is used. A call held only after the reviewer decided was never shown:
    it is rejected (`NOT_SHOWN`). `answered_before`: an earlier pause of this node was
    answered from its record, so its resume value, still the first LangGraph hands
    out, is taken first (see `nodes/output_guards.answered_from_record`)."""
    if not held:
        return {}
    recorded = ledger.recorded_review(held)
    if recorded is not None:
        return {h["call_id"]: recorded for h in held}
    request = ToolReviewRequest(kind="tool_review", calls=list(held))
    if answered_before:
        interrupt(request)  # takes the earlier pause's resume value
    decision = ask(request)
    unseen = _not_shown(held, decision)
    for calls, given in (  # durable before any approved call runs
        ([h for h in held if h["call_id"] not in unseen], decision),
        ([h for h in held if h["call_id"] in unseen], NOT_SHOWN),
    ):
        if calls:
            ledger.record_review(calls, given)
    return {h["call_id"]: NOT_SHOWN if h["call_id"] in unseen else decision for h in held}


# --- the durable record -------------------------------------------------------------------


class Reviews(RecordTable):
    """The `approvals` table of the run store at `db`."""

    def recorded(self, thread: str, call_ids: Sequence[str]) -> dict[str, Any] | None:
        """The decision recorded for every one of `call_ids` (one pause decides them
        all), or None if any is undecided."""
        if not call_ids:
            return None
        marks = ", ".join("?" for _ in call_ids)
        with self.tables.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT call_id, decision, reviewer, reason FROM approvals "
                f"WHERE thread = ? AND call_id IN ({marks})",
                [thread, *call_ids],
            ).fetchall()
        if len(rows) < len(set(call_ids)):
            return None
        # One pause decides all its calls; should two pauses have decided them apart,
        # the strictest decision wins (a rejection), whatever order the rows come in.
        _, action, reviewer, reason = min(rows, key=lambda row: (row[1] == "approve", row[0]))
        decision: dict[str, Any] = {"action": action, "reviewer": reviewer}
        if reason:
            decision["reason"] = reason
        return decision

    def record(
        self, thread: str, calls: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]
    ) -> None:
        """Write the decision on each held call (`tool`, `call_id`, `arguments`); a
        call decided already keeps its first decision."""
        action = str(decision.get("action", "reject"))
        reviewer = decision.get("reviewer")
        reason = decision.get("reason")
        now = self.clock()
        rows = [
            [
                thread,
                str(call["call_id"]),
                str(call["tool"]),
                action,
                None if reviewer is None else str(reviewer),
                None if reason is None else self.redactor.redact_text(str(reason)),
                json.dumps(self.redactor.redact_arguments(call.get("arguments", {})), default=str),
                now,
            ]
            for call in calls
        ]
        with self.tables.transaction() as tx:
            tx.executemany(
                "INSERT INTO approvals (thread, call_id, tool, decision, reviewer, reason, "
                "arguments, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (thread, call_id) DO NOTHING",
                rows,
            )
