"""Cumulative approval rules (issue 11): a call is weighed with the rest of its turn and
with the calls of its scope that already ran — per thread, principal or tenant, in a
time window — read from the audit table, on both run stores."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from checkpoint_stores import target_fixture
from conftest import Scripted

from tierflow import SpecError, Turn, tool
from tierflow.governance import (
    ApprovalRule,
    Grant,
    Policy,
    Principal,
    Redactor,
    audit,
)
from tierflow.governance.calls import GovernedCall
from tierflow.governance.governor import Governor
from tierflow.governance.redact import DEFAULT_SENSITIVE_NAMES
from tierflow.governance.side_effects import RecordedResult
from tierflow.governance.tables import utc_now
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable
from tierflow.store.targets import is_postgres

target = target_fixture()

GRANT = Grant(holder="agent:desk", scopes=frozenset({"refunds:write", "orders:read"}))
SCOPES: dict[str, str | None] = {
    "refund": "refunds:write",
    "partial_refund": "refunds:write",
    "lookup": "orders:read",
    "update_plan": None,
}
SUM_500 = ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=500)
Verdicts = list[Literal["allowed", "denied", "needs_approval"]]


def governor(
    target: str,
    *rules: ApprovalRule,
    thread: str = "t1",
    principal: Principal | None = None,
    clock: Callable[[], str] = utc_now,
    redaction: Redactor | None = None,
) -> Governor:
    policy = Policy(grants=(GRANT,), approvals=rules, redaction=redaction or Redactor())
    return Governor(policy, target, agent="desk", thread=thread, principal=principal, clock=clock)


def refund(amount: Any, call_id: str, step: int = 1, **more: Any) -> GovernedCall:
    arguments = {"order_id": 1, "amount_usd": amount, **more}
    return GovernedCall("refund", "refunds:write", arguments, step, call_id)


def ran(gov: Governor, *calls: GovernedCall, outcome: str = "ok") -> None:
    """Run `calls` through the governor: their audit rows say `outcome`."""
    result = None if outcome == "timeout" else RecordedResult(outcome == "ok", outcome)
    for call in calls:
        gov.execute_tool(call, lambda _attempt: result)


def verdicts(gov: Governor, *turn: GovernedCall) -> Verdicts:
    return [gov.authorize_tool(call, turn=turn, tool_scopes=SCOPES).verdict for call in turn]


def held_reason(gov: Governor, *turn: GovernedCall) -> str:
    verdict = gov.authorize_tool(turn[0], turn=turn, tool_scopes=SCOPES)
    assert verdict.verdict == "needs_approval", verdict
    assert verdict.message == f"Held for human approval: {verdict.reason}."
    return verdict.reason


# --- the turn and what ran -----------------------------------------------------------


def test_five_refunds_of_199_in_one_turn_are_held(target: str) -> None:
    gov = governor(target, SUM_500)
    five = [refund(199, f"c{i}") for i in range(5)]
    assert verdicts(gov, *five) == ["needs_approval"] * 5
    assert held_reason(gov, *five) == (
        "refunds:write needs approval: amount_usd would total 995 — 199 here, 796 more in "
        "this turn, 0 that ran in this thread — above 500"
    )
    assert verdicts(gov, refund(199, "c0"), refund(199, "c1")) == ["allowed", "allowed"]


def test_what_ran_in_earlier_turns_counts(target: str) -> None:
    gov = governor(target, SUM_500)
    first = (refund(199, "c1", step=1), refund(199, "c2", step=1))
    assert verdicts(gov, *first) == ["allowed", "allowed"]
    ran(gov, *first)
    assert held_reason(gov, refund(199, "c3", step=3)) == (
        "refunds:write needs approval: amount_usd would total 597 — 199 here, 0 more in this "
        "turn, 398 that ran in this thread — above 500"
    )
    assert verdicts(gov, refund(102, "c4", step=3)) == ["allowed"]  # 500: not above


def test_a_new_request_counts_its_steps_from_1_and_what_ran_before_still_counts(
    target: str,
) -> None:
    gov = governor(target, SUM_500)
    ran(gov, refund(400, "first-request", step=1))
    assert verdicts(gov, refund(150, "second-request", step=1)) == ["needs_approval"]


def test_only_calls_that_ran_count_and_a_timeout_may_have(target: str) -> None:
    gov = governor(
        target, ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=600)
    )
    ran(gov, refund(199, "ok1"), refund(199, "ok2"))
    ran(gov, refund(100, "late"), outcome="timeout")  # abandoned: it may still have refunded
    ran(gov, refund(300, "failed"), outcome="error")
    rejected = refund(400, "rejected")
    assert gov.reviewed(rejected, {"action": "reject"}) == "rejected"
    gov.tool_audited(refund(400, "denied"), "denied", "not_run", reason="no")
    assert verdicts(gov, refund(100, "next", step=9)) == ["allowed"]  # 598
    assert verdicts(gov, refund(103, "next", step=9)) == ["needs_approval"]  # 601


def test_a_turn_replayed_after_a_crash_does_not_count_its_own_calls_twice(target: str) -> None:
    gov = governor(
        target, ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=450)
    )
    turn = (refund(200, "a", step=5), refund(200, "b", step=5))
    assert verdicts(gov, *turn) == ["allowed", "allowed"]
    ran(gov, turn[0])  # then the process died; the resume re-decides the whole turn
    assert verdicts(gov, *turn) == ["allowed", "allowed"]
    ran(gov, turn[1])
    gov.tool_audited(turn[0], "waited", "ok")  # `a` replayed: a second row, one call
    assert verdicts(gov, refund(50, "c", step=7)) == ["allowed"]  # 450
    assert verdicts(gov, refund(51, "c", step=7)) == ["needs_approval"]


def test_count_above(target: str) -> None:
    gov = governor(target, ApprovalRule(scope="refunds:write", count_above=2))
    assert verdicts(gov, *(refund(1, f"c{i}") for i in range(3))) == ["needs_approval"] * 3
    two = (refund(1, "c1"), refund(1, "c2"))
    assert verdicts(gov, *two) == ["allowed", "allowed"]
    ran(gov, *two)
    assert held_reason(gov, refund(1, "c3", step=3)) == (
        "refunds:write needs approval: 3 refunds:write calls — this one, 0 more in this turn "
        "and 2 that ran in this thread — are more than 2"
    )


def test_the_rules_tools_are_found_by_scope(target: str) -> None:
    gov = governor(target, SUM_500)
    partial = GovernedCall("partial_refund", "refunds:write", {"amount_usd": 400}, 1, "p1")
    lookup = GovernedCall("lookup", "orders:read", {"amount_usd": 900}, 1, "l1")
    ran(gov, partial, lookup)
    call = refund(150, "c1", step=3)
    assert gov.authorize_tool(call, turn=[call], tool_scopes=SCOPES).verdict == "needs_approval"
    # Without the agent's tools, only the turn's are known: act always passes them.
    assert gov.authorize_tool(call, turn=[call]).verdict == "allowed"


def test_when_narrows_what_is_added_up(target: str) -> None:
    def in_euros(arguments: Any) -> bool:
        return bool(arguments.get("currency") == "EUR")

    rule = ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=500, when=in_euros)
    gov = governor(target, rule)
    ran(gov, refund(300, "e1", currency="EUR"), refund(300, "u1", currency="USD"))
    assert verdicts(gov, refund(200, "e2", step=3, currency="EUR")) == ["allowed"]  # 500
    assert verdicts(gov, refund(201, "e2", step=3, currency="EUR")) == ["needs_approval"]
    assert verdicts(gov, refund(900, "u2", step=3, currency="USD")) == ["allowed"]


# --- fail safe ------------------------------------------------------------------------


def test_a_value_that_cannot_be_added_up_holds_the_call(target: str) -> None:
    gov = governor(target, SUM_500)
    assert held_reason(gov, refund(math.nan, "c1")) == (
        "refunds:write needs approval: amount_usd is nan, which can't be added up"
    )
    assert held_reason(gov, refund(10, "c1"), refund("NaN", "c2")) == (
        "refunds:write needs approval: amount_usd of another call of this turn is 'NaN', "
        "which can't be added up"
    )
    approved = refund(math.inf, "c3")
    gov.execute_tool(approved, lambda _attempt: RecordedResult(True, "done"), decision="approved")
    assert held_reason(gov, refund(10, "c4", step=3)) == (
        "refunds:write needs approval: amount_usd of a call that ran in this thread is inf, "
        "which can't be added up"
    )


def test_a_redacted_amount_can_not_be_added_up(target: str) -> None:
    secret = Redactor(sensitive_names=(*DEFAULT_SENSITIVE_NAMES, "amount_usd"))
    gov = governor(target, SUM_500, redaction=secret)
    ran(gov, refund(1, "c1"))
    assert held_reason(gov, refund(1, "c2", step=3)).endswith(
        "amount_usd of a call that ran in this thread is '[REDACTED]', which can't be added up"
    )


# --- per thread, principal, tenant; the window ----------------------------------------

ALICE = Principal(id="alice", tenant="acme")
BOB = Principal(id="bob", tenant="acme")
CAROL = Principal(id="carol", tenant="globex")


@pytest.mark.parametrize(
    ("per", "expected"),
    [
        ("thread", ["needs_approval", "allowed", "allowed", "allowed"]),
        ("principal", ["needs_approval", "needs_approval", "allowed", "allowed"]),
        ("tenant", ["needs_approval", "needs_approval", "needs_approval", "allowed"]),
    ],
)
def test_per_thread_principal_or_tenant(
    target: str, per: Literal["thread", "principal", "tenant"], expected: Verdicts
) -> None:
    runs = RunsTable(target)
    threads = {"t1": ALICE, "t2": ALICE, "t3": BOB, "t4": CAROL}
    for thread, principal in threads.items():
        runs.start(
            thread,
            agent="desk",
            source="test",
            request="refund",
            principal=principal.model_dump(mode="json"),
        )
    rule = ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=500, per=per)
    ran(governor(target, rule, thread="t1", principal=ALICE), refund(400, "c1"))
    got = [
        governor(target, rule, thread=thread, principal=principal)
        .authorize_tool(call := refund(150, "c9", step=3), turn=[call], tool_scopes=SCOPES)
        .verdict
        for thread, principal in threads.items()
    ]
    assert got == expected


def test_the_reason_says_whose_calls_were_added_up(target: str) -> None:
    rule = ApprovalRule(
        scope="refunds:write", argument="amount_usd", sum_above=500, per="principal"
    )
    ran(governor(target, rule, thread="t1", principal=ALICE), refund(400, "c1"))
    gov = governor(target, rule, thread="t2", principal=ALICE)
    assert held_reason(gov, refund(150, "c2")) == (
        "refunds:write needs approval: amount_usd would total 550 — 150 here, 0 more in this "
        "turn, 400 that ran for principal alice — above 500"
    )


def test_runs_without_a_principal_count_as_one_principal(target: str) -> None:
    rule = ApprovalRule(
        scope="refunds:write", argument="amount_usd", sum_above=500, per="principal"
    )
    ran(governor(target, rule, thread="a1"), refund(400, "c1"))
    assert verdicts(governor(target, rule, thread="a2"), refund(150, "c2")) == ["needs_approval"]
    assert verdicts(governor(target, rule, thread="a3", principal=ALICE), refund(150, "c2")) == [
        "allowed"
    ]


def test_a_window_counts_only_the_calls_that_ran_in_it(target: str) -> None:
    now = [datetime(2025, 3, 1, 12, 0, tzinfo=UTC)]

    def clock() -> str:
        return now[0].isoformat(timespec="microseconds")

    def rule(window_s: float | None) -> ApprovalRule:
        return ApprovalRule(
            scope="refunds:write", argument="amount_usd", sum_above=500, window_s=window_s
        )

    ran(governor(target, rule(3600), clock=clock), refund(400, "c1"))
    now[0] += timedelta(hours=2)
    call = refund(150, "c2", step=3)
    assert verdicts(governor(target, rule(3600), clock=clock), call) == ["allowed"]
    assert verdicts(governor(target, rule(None), clock=clock), call) == ["needs_approval"]
    assert held_reason(governor(target, rule(3 * 3600), clock=clock), call) == (
        "refunds:write needs approval: amount_usd would total 550 — 150 here, 0 more in this "
        "turn, 400 that ran in this thread in the last 10800s — above 500"
    )


def never_opened(target: str) -> bool:
    if not is_postgres(target):
        return not Path(target).exists()
    with psycopg.connect(target) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert row is not None
    return int(row[0]) == 0


def test_no_table_is_read_for_a_call_no_cumulative_rule_concerns(target: str) -> None:
    gov = governor(target, SUM_500)
    lookup = GovernedCall("lookup", "orders:read", {"order_id": 1}, 1, "l1")
    no_amount = GovernedCall("refund", "refunds:write", {"order_id": 1}, 1, "r1")
    assert verdicts(gov, lookup, no_amount) == ["allowed", "allowed"]
    assert never_opened(target)


# --- declared as data -----------------------------------------------------------------


def test_cumulative_rules_are_stable_json() -> None:
    rule = ApprovalRule(
        scope="refunds:write",
        argument="amount_usd",
        sum_above=500,
        per="principal",
        window_s=86_400,
        reason="over $500 a day",
    )
    dumped = rule.model_dump(mode="json")
    assert dumped == {
        "scope": "refunds:write",
        "argument": "amount_usd",
        "above": None,
        "at_least": None,
        "equals": None,
        "one_of": None,
        "sum_above": 500.0,
        "count_above": None,
        "per": "principal",
        "window_s": 86400.0,
        "when": None,
        "reason": "over $500 a day",
    }
    assert ApprovalRule(**json.loads(json.dumps(dumped))) == rule
    count = ApprovalRule(scope="refunds:write", count_above=3, per="tenant")
    assert ApprovalRule(**json.loads(json.dumps(count.model_dump(mode="json")))) == count


def test_a_per_call_rule_and_a_policy_keep_the_json_they_had() -> None:
    """Declarations that use none of the new fields serialise exactly as before, so the
    agent's fingerprint — and a resume of its runs — is unchanged."""
    per_call = ApprovalRule(scope="refunds:write", argument="amount_usd", above=200)
    assert list(per_call.model_dump(mode="json")) == [
        "scope",
        "argument",
        "above",
        "at_least",
        "equals",
        "one_of",
        "when",
        "reason",
    ]
    assert list(Policy().model_dump(mode="json")) == [
        "grants",
        "approvals",
        "redaction",
        "limits",
        "retry",
        "run_budget_usd",
        "run_budget_tokens",
        "max_output_tokens",
    ]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"sum_above": 5}, "sum_above needs the argument"),
        ({"argument": "amount_usd", "count_above": 3}, "count_above counts calls"),
        ({"argument": "amount_usd", "sum_above": 5, "above": 1}, "one comparison"),
        ({"count_above": -1}, "greater than or equal to 0"),
        ({"argument": "amount_usd", "above": 1, "per": "principal"}, "belong to a cumulative"),
        ({"argument": "amount_usd", "above": 1, "window_s": 60}, "belong to a cumulative"),
        ({"count_above": 1, "window_s": 0}, "greater than 0"),
        ({"count_above": 1, "per": "everyone"}, "per"),
    ],
)
def test_bad_cumulative_rules_fail_when_declared(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        ApprovalRule(scope="refunds:write", **fields)


# --- in a governed run ----------------------------------------------------------------


def test_five_refunds_in_one_turn_go_to_the_turns_one_review(
    scripted_agent: Callable[..., Scripted], target: str
) -> None:
    refunded: list[tuple[int, float]] = []

    @tool(scope="refunds:write", side_effects=True)
    def refund(order_id: int, amount_usd: float) -> str:
        """Refund an order."""
        refunded.append((order_id, amount_usd))
        return f"refunded {amount_usd} on {order_id}"

    five = tuple(("refund", {"order_id": order, "amount_usd": 199.0}) for order in range(5))
    scripted = scripted_agent(
        [Turn(calls=five), Turn(text="Refunded.")],
        tools=(refund,),
        policy=Policy(
            grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:write"})),),
            approvals=(SUM_500,),
        ),
    )
    runner = Runner(scripted.agent, db=target)
    report = runner.run("refund the five orders", "t")
    assert report.status == "interrupted"
    (review,) = report.review
    assert [call["held_by"] for call in review["calls"]] == [["approval"]] * 5
    assert review["calls"][0]["reason"].startswith(
        "refunds:write needs approval: amount_usd would total 995"
    )
    assert refunded == []  # nothing of the turn ran before the decision
    decision = {"action": "approve", "reviewer": "dana"}
    assert Runner(scripted.agent, db=target).resume("t", decision).status == "done"
    assert sorted(refunded) == [(order, 199.0) for order in range(5)]
    rows = audit(target, "t")
    assert (
        sorted((r["kind"], r["decision"], r["outcome"]) for r in rows if r["kind"] != "model")
        == [("review", "approved", "ok")] * 5 + [("tool", "approved", "ok")] * 5
    )
    assert {r["reason"] for r in rows if r["kind"] == "review"} == {"approved by dana"}


def test_what_ran_of_the_scope_under_another_tool_counts_in_a_governed_run(
    scripted_agent: Callable[..., Scripted], target: str
) -> None:
    refunded: list[str] = []

    @tool(scope="refunds:write", side_effects=True)
    def partial_refund(order_id: int, amount_usd: float) -> str:
        """Refund part of an order."""
        refunded.append(f"partial {amount_usd:g}")
        return "refunded"

    @tool(scope="refunds:write", side_effects=True)
    def refund(order_id: int, amount_usd: float) -> str:
        """Refund an order."""
        refunded.append(f"full {amount_usd:g}")
        return "refunded"

    scripted = scripted_agent(
        [
            Turn(calls=(("partial_refund", {"order_id": 1, "amount_usd": 400.0}),)),
            Turn(calls=(("refund", {"order_id": 2, "amount_usd": 150.0}),)),
            Turn(text="Refunded."),
        ],
        tools=(partial_refund, refund),
        policy=Policy(
            grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:write"})),),
            approvals=(SUM_500,),
        ),
    )
    report = Runner(scripted.agent, db=target).run("refund both", "t")
    assert report.status == "interrupted"
    assert refunded == ["partial 400"]
    (held,) = report.review[0]["calls"]
    assert (held["tool"], held["reason"]) == (
        "refund",
        "refunds:write needs approval: amount_usd would total 550 — 150 here, 0 more in this "
        "turn, 400 that ran in this thread — above 500",
    )
