"""Reviewers' decisions on held tool calls (`Reviews`), on both run stores — a SQLite
file and Postgres: read back from the store, the first decision kept, undecided
until every held call has one, secrets masked before they are written, and keyed by
thread, so another thread (a fork) inherits nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from checkpoint_stores import target_fixture

from tierflow.governance.redact import Redactor
from tierflow.governance.reviews import Reviews
from tierflow.store import database
from tierflow.store.database import rows_as_dicts

DECIDED_AT = "2026-11-26T10:00:00+00:00"

target = target_fixture()


def held(call_id: str, amount_usd: float = 349, **arguments: Any) -> dict[str, Any]:
    """A held refund call, as `act` hands it to `Reviews.record`."""
    fields = {"order_id": 1042, "amount_usd": amount_usd, **arguments}
    return {"tool": "refund", "call_id": call_id, "arguments": fields}


def reviews(target: str, redactor: Redactor | None = None) -> Reviews:
    return Reviews(target, redactor=redactor, clock=lambda: DECIDED_AT)


def approvals(target: str) -> list[dict[str, Any]]:
    """The `approvals` table as stored, in (thread, call id) order, its JSON arguments
    parsed."""
    with database.using(target) as db, db.transaction(write=False) as tx:
        rows = rows_as_dicts(
            tx.execute(
                "SELECT thread, call_id, tool, decision, reviewer, reason, arguments, "
                "decided_at FROM approvals ORDER BY thread, call_id",
                [],
            )
        )
    return [{**row, "arguments": json.loads(row["arguments"])} for row in rows]


def approve(reviewer: str = "ops@acme", reason: str | None = None) -> Mapping[str, Any]:
    decision = {"action": "approve", "reviewer": reviewer}
    return decision if reason is None else {**decision, "reason": reason}


def test_a_recorded_decision_is_read_back(target: str) -> None:
    assert reviews(target).recorded("t1", ["c1"]) is None  # nothing decided yet
    reviews(target).record("t1", [held("c1"), held("c2", 900)], approve(reason="verified"))
    later = Reviews(target)  # as a resume after a crash reads it: a new handle
    decision = {"action": "approve", "reviewer": "ops@acme", "reason": "verified"}
    assert later.recorded("t1", ["c1", "c2"]) == decision
    assert later.recorded("t1", ["c2"]) == decision
    assert later.recorded("t1", []) is None  # no held calls: nothing was decided
    assert approvals(target) == [
        {
            "thread": "t1",
            "call_id": call_id,
            "tool": "refund",
            "decision": "approve",
            "reviewer": "ops@acme",
            "reason": "verified",
            "arguments": {"order_id": 1042, "amount_usd": amount},
            "decided_at": DECIDED_AT,
        }
        for call_id, amount in (("c1", 349), ("c2", 900))
    ]


def test_a_decision_without_reason_or_reviewer_reads_back_without_them(target: str) -> None:
    reviews(target).record("t1", [held("c1")], {"action": "reject"})
    assert reviews(target).recorded("t1", ["c1"]) == {"action": "reject", "reviewer": None}
    (row,) = approvals(target)
    assert (row["reviewer"], row["reason"]) == (None, None)


def test_a_decision_without_an_action_is_a_rejection(target: str) -> None:
    reviews(target).record("t1", [held("c1")], {"reviewer": "ops@acme"})
    assert reviews(target).recorded("t1", ["c1"]) == {"action": "reject", "reviewer": "ops@acme"}


def test_the_first_decision_wins(target: str) -> None:
    store = reviews(target)
    store.record("t1", [held("c1")], approve("alice"))
    store.record("t1", [held("c1", 5_000)], {"action": "reject", "reviewer": "bob", "reason": "no"})
    assert store.recorded("t1", ["c1"]) == {"action": "approve", "reviewer": "alice"}
    (row,) = approvals(target)  # the second decision wrote nothing, not even arguments
    assert (row["decision"], row["reviewer"], row["reason"]) == ("approve", "alice", None)
    assert row["arguments"]["amount_usd"] == 349


def test_a_partial_set_of_call_ids_is_undecided(target: str) -> None:
    """One pause decides all its held calls: while any of them has no record, the
    pause is undecided and the reviewer is asked."""
    store = reviews(target)
    store.record("t1", [held("c1")], approve())
    assert store.recorded("t1", ["c1", "c2"]) is None
    assert store.recorded("t1", ["c2", "c1"]) is None
    assert store.recorded("t1", ["c2"]) is None
    assert store.recorded("t1", ["c1", "c1"]) == {"action": "approve", "reviewer": "ops@acme"}
    store.record("t1", [held("c2")], approve())
    assert store.recorded("t1", ["c1", "c2"]) == {"action": "approve", "reviewer": "ops@acme"}


def test_arguments_and_reason_are_redacted_before_they_are_written(target: str) -> None:
    redactor = Redactor().with_values("ACME-INTERNAL-7731")
    arguments: dict[str, Any] = {
        "api_key": "abc123",
        "note": "customer sent token=xyz789",
        "ticket": "ACME-INTERNAL-7731",
    }
    reason = "checked with Bearer abcdefghijkl against ACME-INTERNAL-7731"
    reviews(target, redactor).record("t1", [held("c1", **arguments)], approve(reason=reason))

    masked_reason = "checked with Bearer [REDACTED] against [REDACTED]"
    decision = reviews(target).recorded("t1", ["c1"])
    assert decision == {"action": "approve", "reviewer": "ops@acme", "reason": masked_reason}
    (row,) = approvals(target)
    assert row["reason"] == masked_reason
    assert row["arguments"] == {
        "order_id": 1042,
        "amount_usd": 349,
        "api_key": "[REDACTED]",
        "note": "customer sent token=[REDACTED]",
        "ticket": "[REDACTED]",
    }
    stored = json.dumps(row)
    for secret in ("abc123", "xyz789", "abcdefghijkl", "ACME-INTERNAL-7731"):
        assert secret not in stored


def test_decisions_are_keyed_by_thread(target: str) -> None:
    """A fork is another thread: it sees none of its parent's decisions, and its own
    review of the same call id leaves the parent's as it was."""
    store = reviews(target)
    store.record("t1", [held("c1")], approve("alice"))
    assert store.recorded("t2", ["c1"]) is None
    store.record("t2", [held("c1")], {"action": "reject", "reviewer": "bob"})
    assert store.recorded("t1", ["c1"]) == {"action": "approve", "reviewer": "alice"}
    assert store.recorded("t2", ["c1"]) == {"action": "reject", "reviewer": "bob"}
    assert [(r["thread"], r["call_id"], r["decision"]) for r in approvals(target)] == [
        ("t1", "c1", "approve"),
        ("t2", "c1", "reject"),
    ]
