"""The audit log: written with redacted arguments, read back per thread, deduplicated
on replay; and the Governor's decisions each leave their row."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest

from tierflow.errors import CheckpointError
from tierflow.governance.approval import ApprovalRule
from tierflow.governance.audit import AuditLog, AuditRecord, audit
from tierflow.governance.budget import Reservation, Spend, run_key
from tierflow.governance.errors import BudgetExceeded
from tierflow.governance.governor import Governor
from tierflow.governance.permissions import Grant
from tierflow.governance.policy import Policy, Principal

ticks = count()


def clock() -> str:
    return f"2026-11-26T10:00:{next(ticks):02d}+00:00"


def record(**fields: object) -> AuditRecord:
    base: AuditRecord = {
        "thread": "t1",
        "step": 2,
        "kind": "tool",
        "name": "order_details",
        "decision": "allowed",
        "outcome": "ok",
    }
    return base | fields  # type: ignore[return-value]


def test_rows_read_back_per_thread_oldest_first(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "runs.db", clock=clock)
    log.write(record(arguments={"order_id": 1042}, latency_s=0.012, principal="alice"))
    log.write(record(thread="t2", name="refund", decision="denied", outcome="not_run"))
    log.write(record(kind="model", name="fast:gpt-4.1", tokens=812, cost_usd=0.0031))
    rows = audit(tmp_path / "runs.db", "t1")
    assert [r["name"] for r in rows] == ["order_details", "fast:gpt-4.1"]
    first = rows[0]
    assert first["arguments"] == {"order_id": 1042}
    assert first["principal"] == "alice"
    assert first["latency_s"] == 0.012
    assert rows[1]["tokens"] == 812
    assert rows[1]["cost_usd"] == 0.0031
    assert rows[0]["time"] < rows[1]["time"]
    assert len(audit(tmp_path / "runs.db")) == 3


def test_arguments_and_reasons_are_redacted(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "runs.db")
    log.write(
        record(
            arguments={"api_key": "abc123", "note": "token=xyz789", "amount_usd": 20},
            outcome="error",
            reason="upstream said: Bearer abcdefghijkl rejected",
        )
    )
    (row,) = audit(tmp_path / "runs.db")
    assert row["arguments"] == {
        "api_key": "[REDACTED]",
        "note": "token=[REDACTED]",
        "amount_usd": 20,
    }
    assert row["reason"] == "upstream said: Bearer [REDACTED] rejected"


def test_a_replayed_event_is_logged_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "runs.db")
    log.write(record(event="tool:t1:2:c1:denied", decision="denied"))
    log.write(record(event="tool:t1:2:c1:denied", decision="denied"))
    log.write(record())  # no event: always written
    log.write(record())
    assert len(audit(tmp_path / "runs.db")) == 3


def test_reading_a_missing_database_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no database"):
        audit(tmp_path / "missing.db")
    assert list(tmp_path.iterdir()) == []


def test_the_audit_table_shares_the_checkpoint_file(tmp_path: Path) -> None:
    """The governance tables go into a tierflow runs database, which the checkpoint
    store still opens afterwards."""
    from tierflow import checkpoints

    db = tmp_path / "runs.db"
    AuditLog(db).write(record())
    with checkpoints.open(db, create=False) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "t1"}}) is None
    assert len(audit(db)) == 1


# --- the Governor ---------------------------------------------------------------------

AGENT = Grant(holder="agent:support_desk", scopes=frozenset({"orders:read", "refunds:write"}))
POLICY = Policy(
    grants=(AGENT,),
    approvals=(ApprovalRule(scope="refunds:write", argument="amount_usd", above=200),),
    run_budget_usd=0.05,
)


def governor(tmp_path: Path, principal: Principal | None = None) -> Governor:
    return Governor(
        POLICY, tmp_path / "runs.db", agent="support_desk", thread="t1", principal=principal
    )


def test_a_denied_call_is_an_observation_and_an_audit_row(tmp_path: Path) -> None:
    reader = Principal(
        id="bob", grants=(Grant(holder="principal:bob", scopes=frozenset({"*:read"})),)
    )
    gov = governor(tmp_path, reader)
    verdict = gov.authorize_tool(
        tool="refund", scope="refunds:write", arguments={"amount_usd": 20}, step=3, call_id="c1"
    )
    assert verdict.verdict == "denied"
    assert verdict.message.startswith("Not run: refund needs permission refunds:write")
    (row,) = audit(tmp_path / "runs.db", "t1")
    assert (row["decision"], row["outcome"], row["principal"]) == ("denied", "not_run", "bob")
    assert row["reason"] == "principal:bob is not granted refunds:write"


def test_allowed_and_held_calls_are_audited_when_they_finish(tmp_path: Path) -> None:
    gov = governor(tmp_path)
    small = gov.authorize_tool(
        tool="refund", scope="refunds:write", arguments={"amount_usd": 20}, step=3, call_id="c1"
    )
    large = gov.authorize_tool(
        tool="refund", scope="refunds:write", arguments={"amount_usd": 349}, step=3, call_id="c2"
    )
    assert small.allowed
    assert large.verdict == "needs_approval"
    assert "amount_usd 349 is above 200" in large.reason
    assert not (tmp_path / "runs.db").exists()  # nothing happened yet: nothing written
    gov.tool_finished(
        tool="refund",
        arguments={"amount_usd": 20},
        step=3,
        call_id="c1",
        outcome="ok",
        latency_s=0.2,
    )
    approved = gov.reviewed(
        tool="refund",
        arguments={"amount_usd": 349},
        step=3,
        call_id="c2",
        decision={"action": "approve"},
    )
    assert approved == "approved"
    gov.tool_finished(
        tool="refund",
        arguments={"amount_usd": 349},
        step=3,
        call_id="c2",
        outcome="ok",
        decision=approved,
    )
    rejected = gov.reviewed(
        tool="refund",
        arguments={"amount_usd": 900},
        step=4,
        call_id="c3",
        decision={"action": "reject", "reason": "too much"},
    )
    assert rejected == "rejected"
    rows = audit(tmp_path / "runs.db")
    assert [(r["call_id"], r["decision"], r["outcome"]) for r in rows] == [
        ("c1", "allowed", "ok"),
        ("c2", "approved", "ok"),
        ("c3", "rejected", "not_run"),
    ]
    assert rows[2]["reason"] == "too much"


def test_model_calls_reserve_settle_and_audit(tmp_path: Path) -> None:
    gov = governor(tmp_path, Principal(id="alice", tenant="acme"))
    gov.start_run()
    assert gov.budget_keys() == ("run:t1", "principal:alice", "tenant:acme")
    held = gov.reserve_model(estimate=Spend(usd=0.04, tokens=4_000), step=1, model="fast:gpt-4.1")
    assert isinstance(held, Reservation)
    gov.settle_model(held, actual=Spend(usd=0.01, tokens=900), step=1, latency_s=1.5)
    refused = gov.reserve_model(estimate=Spend(usd=0.05), step=2, model="fast:gpt-4.1")
    assert isinstance(refused, BudgetExceeded)
    rows = audit(tmp_path / "runs.db")
    assert [(r["kind"], r["decision"], r["tokens"], r["cost_usd"]) for r in rows] == [
        ("model", "allowed", 900, 0.01),
        ("model", "denied", None, None),
    ]
    assert rows[1]["reason"].startswith("budget run:t1 exceeded")

    gov.budgets.raise_limit(run_key("t1"), usd=1.0)
    gov.start_run()  # a resume keeps the raised budget
    assert isinstance(gov.reserve_model(estimate=Spend(usd=0.05), step=2, model="m"), Reservation)


def test_start_run_closes_what_a_dead_process_left_open(tmp_path: Path) -> None:
    gov = governor(tmp_path)
    gov.start_run()
    assert isinstance(gov.reserve_model(estimate=Spend(usd=0.03), step=1, model="m"), Reservation)
    gov.start_run()  # the process died mid-call; resuming counts the hold as spent
    usage = gov.budgets.usage(run_key("t1"))
    assert usage.held.usd == 0
    assert usage.spent.usd == pytest.approx(0.03)
