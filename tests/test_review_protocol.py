"""The human-review protocol read in one place (`tierflow.governance.reviews`): what a
decision means for a held answer and for held calls, and a garbled one is a rejection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierflow.governance.reviews import (
    HeldCall,
    Rejected,
    read_decision,
    rejection_reason,
    review_held,
    review_outcome,
    reviewed_answer,
)


def test_an_answer_goes_on_approved_or_edited_and_anything_else_is_rejected() -> None:
    assert reviewed_answer({"action": "approve"}, "draft") == "draft"
    assert reviewed_answer({"action": "edit", "answer": "better"}, "draft") == "better"
    assert reviewed_answer({"action": "edit"}, "draft") == Rejected("no reason given")
    assert reviewed_answer({"action": "reject", "reason": "wrong"}, "draft") == Rejected("wrong")
    assert reviewed_answer({"action": "APPROVE"}, "draft") == Rejected("no reason given")


def test_a_payload_that_is_not_a_mapping_is_a_rejection_that_says_what_arrived() -> None:
    decision = read_decision("approve")
    assert review_outcome(decision) == "rejected"
    assert rejection_reason(decision) == "unreadable review decision: 'approve'"
    given = {"action": "approve", "reviewer": "ana"}
    assert read_decision(given) is given


class Ledger:
    """A ledger holding one recorded decision (a resume after a crash)."""

    def __init__(self, recorded: dict[str, Any] | None) -> None:
        self.recorded = recorded
        self.written: list[tuple[list[str], Mapping[str, Any]]] = []

    def recorded_review(self, held: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        return self.recorded

    def record_review(self, held: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> None:
        self.written.append(([str(call["call_id"]) for call in held], decision))


def held(call_id: str) -> HeldCall:
    return HeldCall(
        tool="refund",
        call_id=call_id,
        arguments={"amount_usd": 349},
        guard="approval:refunds:write",
        reason="above $200",
        held_by=["approval"],
    )


def test_a_recorded_decision_answers_every_held_call_without_a_pause() -> None:
    recorded = {"action": "approve", "reviewer": "ana"}
    ledger = Ledger(recorded)
    assert review_held([held("a"), held("b")], ledger) == {"a": recorded, "b": recorded}
    assert ledger.written == []
    assert review_held([], Ledger(None)) == {}
