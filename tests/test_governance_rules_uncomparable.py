"""Approval rules fail safe: a value that can't be compared with the rule's limit is held
for a human — NaN and infinities (numbers, or strings the tool's schema turns into
numbers), None, booleans, strings, ints too large for a float (issue 11)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted

from tierflow import SpecError, Turn, tool
from tierflow.governance import ApprovalRule, Grant, Policy, audit
from tierflow.governance.approval import comparable, needs_approval
from tierflow.runs.runner import Runner

ABOVE = ApprovalRule(scope="refunds:write", argument="amount_usd", above=200)
AT_LEAST = ApprovalRule(scope="refunds:write", argument="amount_usd", at_least=200)

UNCOMPARABLE: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "250",
    "lots",
    "",
    None,
    True,
    False,
    10**400,
]


@pytest.mark.parametrize("rule", [ABOVE, AT_LEAST], ids=["above", "at_least"])
@pytest.mark.parametrize("value", UNCOMPARABLE, ids=repr)
def test_a_value_that_cannot_be_compared_is_held(rule: ApprovalRule, value: Any) -> None:
    needed = needs_approval([rule], "refunds:write", {"amount_usd": value})
    assert needed is not None
    assert needed.reason == (
        f"refunds:write needs approval: amount_usd is {value!r}, which can't be compared with 200"
    )


@pytest.mark.parametrize(
    ("value", "held"), [(0, False), (-5, False), (199.5, False), (200, False), (200.5, True)]
)
def test_finite_numbers_still_compare(value: float, held: bool) -> None:
    assert (needs_approval([ABOVE], "refunds:write", {"amount_usd": value}) is not None) is held


@pytest.mark.parametrize("value", UNCOMPARABLE, ids=repr)
def test_comparable_refuses_every_uncomparable_value(value: Any) -> None:
    assert comparable(value) is None


def test_comparable_takes_ints_and_finite_floats() -> None:
    assert (comparable(3), comparable(-2.5), comparable(0)) == (3.0, -2.5, 0.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"above": math.nan},
        {"above": math.inf},
        {"at_least": -math.inf},
        {"sum_above": math.nan},
        {"sum_above": 10.0, "window_s": math.inf},
    ],
    ids=repr,
)
def test_a_limit_that_compares_with_nothing_fails_when_declared(fields: dict[str, Any]) -> None:
    # A NaN limit would make every comparison false: the rule would never hold a call.
    with pytest.raises(SpecError, match="finite"):
        ApprovalRule(scope="refunds:write", argument="amount_usd", **fields)


# --- through the tool's schema, in a governed run -------------------------------------


@pytest.mark.parametrize("sent", [math.nan, "NaN", "nan", "Infinity", "-inf"], ids=repr)
def test_a_nan_or_infinite_amount_is_held_in_a_governed_run(
    scripted_agent: Callable[..., Scripted], db: str, sent: Any
) -> None:
    """The model sends a number or a string; the tool's `float` schema turns the string
    into a float NaN or infinity — the value the rule sees, and must hold."""
    ran: list[float] = []

    @tool(scope="refunds:write", side_effects=True)
    def refund(order_id: int, amount_usd: float) -> str:
        """Refund an order."""
        ran.append(amount_usd)
        return "refunded"

    scripted = scripted_agent(
        [Turn(calls=(("refund", {"order_id": 7, "amount_usd": sent}),)), Turn(text="ok")],
        tools=(refund,),
        policy=Policy(
            grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:write"})),),
            approvals=(ABOVE,),
        ),
    )
    runner = Runner(scripted.agent, db=db)
    report = runner.run("refund order 7", "t")
    assert report.status == "interrupted"
    (held,) = report.review[0]["calls"]
    assert held["held_by"] == ["approval"]
    assert "which can't be compared with 200" in held["reason"]
    assert ran == []
    assert runner.resume("t", {"action": "reject", "reason": "not a number"}).status == "done"
    assert ran == []
    rows = [(e["name"], e["decision"], e["outcome"]) for e in audit(db, "t") if e["kind"] == "tool"]
    assert rows == [("refund", "rejected", "not_run")]
