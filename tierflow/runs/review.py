"""Resuming a thread paused for review: the reviewer's decision as the payload LangGraph
resumes with, or the one recorded before a crash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langgraph.types import Command, Interrupt, StateSnapshot

from tierflow.errors import TierflowError
from tierflow.governance.reviews import Reviews


def recorded_review(db: str | Path, thread: str, snapshot: StateSnapshot) -> dict[str, Any] | None:
    """The reviewer's recorded decision on every call the thread is paused on: it was
    given, and the process died before the calls ran. None if any is undecided."""
    call_ids = [
        str(call.get("call_id"))
        for item in snapshot.interrupts
        if isinstance(item.value, Mapping) and item.value.get("kind") == "tool_review"
        for call in item.value.get("calls", [])
    ]
    if len(call_ids) == 0 or any(
        not (isinstance(i.value, Mapping) and i.value.get("kind") == "tool_review")
        for i in snapshot.interrupts
    ):
        return None
    return Reviews(db).recorded(thread, call_ids)


def review_command(
    thread: str, snapshot: StateSnapshot, decision: Mapping[str, Any] | None
) -> Command[Any] | None:
    """The resume payload for a thread: None to continue, or the reviewer's decision for
    every pending interrupt. A decision without a pause, or a pause without a decision,
    is an error (nothing is run)."""
    pending = snapshot.interrupts
    approvals = [i for i in pending if _kind(i) == "approval"]  # a workflow's Approval steps
    choices = (
        "--approve or --reject REASON"
        if approvals
        else ("--approve, --reject REASON or --edit FILE")
    )
    if decision is None and pending:
        raise TierflowError(
            f"thread {thread!r} is waiting for a review ({_describe_pending(pending)}): resume "
            f"it with {choices}"
        )
    if decision is None:
        return None
    if not pending:
        raise TierflowError(f"thread {thread!r} is not waiting for a review; nothing to decide")
    if approvals and decision.get("action") == "edit":
        raise TierflowError(
            f"thread {thread!r} is waiting for an approval, which has no answer to edit: "
            f"resume it with {choices}"
        )
    if len(pending) == 1:
        return Command(resume=_seen(decision, pending[0]))
    return Command(resume={item.id: _seen(decision, item) for item in pending})


def _seen(decision: Mapping[str, Any], pending: Interrupt) -> dict[str, Any]:
    """The decision, naming the held calls the reviewer was shown: a call held only
    when the node runs again (the set grew meanwhile) is not covered by it."""
    value = pending.value if isinstance(pending.value, Mapping) else {}
    if value.get("kind") != "tool_review":
        return dict(decision)
    return {**decision, "call_ids": [str(c.get("call_id")) for c in value.get("calls", [])]}


def _kind(item: Interrupt) -> object:
    return item.value.get("kind") if isinstance(item.value, Mapping) else None


def _describe_pending(pending: Sequence[Interrupt]) -> str:
    parts = []
    for item in pending:
        value = item.value if isinstance(item.value, Mapping) else {}
        if value.get("kind") == "tool_review":
            held = ", ".join(str(call.get("tool")) for call in value.get("calls", []))
            parts.append(f"tool calls held for approval: {held}")
        elif value.get("kind") == "approval":
            parts.append(f"approval at step {value.get('step')!r}: {value.get('message')}")
        else:
            parts.append(f"answer held by guard {value.get('guard', '?')!r}")
    return ", ".join(parts)
