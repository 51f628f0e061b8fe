"""Permissions and approval rules: deny by default, every grant must agree, rules on
arguments hold calls for a human."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tierflow.errors import SpecError
from tierflow.governance.approval import ApprovalRule, needs_approval
from tierflow.governance.permissions import Grant, check, covers, denial_message
from tierflow.governance.reviews import review_outcome

SUPPORT_AGENT = Grant(holder="agent:support_desk", scopes=frozenset({"orders:read", "refunds:*"}))


def test_a_granted_scope_is_allowed_and_says_by_what() -> None:
    decision = check("orders:read", [SUPPORT_AGENT])
    assert decision.allowed
    assert "orders:read" in decision.reason


def test_a_scope_not_granted_is_denied() -> None:
    decision = check("payouts:write", [SUPPORT_AGENT])
    assert not decision.allowed
    assert decision.reason == "agent:support_desk is not granted payouts:write"


def test_no_grant_denies_everything_scoped() -> None:
    assert not check("orders:read", []).allowed


def test_a_tool_without_scope_needs_no_grant() -> None:
    assert check(None, []).allowed


@pytest.mark.parametrize(
    ("pattern", "scope", "covered"),
    [
        ("refunds:*", "refunds:write", True),
        ("refunds:*", "orders:write", False),
        ("*:read", "orders:read", True),
        ("*:read", "orders:write", False),
        ("*:*", "anything:goes", True),
        ("refunds:write", "refunds:write", True),
        ("refunds:write", "refunds:writer", False),
    ],
)
def test_wildcards(pattern: str, scope: str, covered: bool) -> None:
    assert covers(pattern, scope) is covered


def test_every_grant_must_allow() -> None:
    """The agent may refund; the principal may only read: the principal's grant wins."""
    principal = Grant(holder="principal:bob", scopes=frozenset({"*:read"}))
    decision = check("refunds:write", [SUPPORT_AGENT, principal])
    assert not decision.allowed
    assert decision.reason == "principal:bob is not granted refunds:write"
    assert check("orders:read", [SUPPORT_AGENT, principal]).allowed


def test_deny_wins_over_a_wildcard() -> None:
    tenant = Grant(holder="tenant:acme", scopes=frozenset({"*:*"}), deny=frozenset({"refunds:*"}))
    decision = check("refunds:write", [tenant])
    assert not decision.allowed
    assert "denied refunds:write (by refunds:*)" in decision.reason


@pytest.mark.parametrize(
    "declared",
    ["refunds:*", "refunds", "Refunds:Write", "refunds:write ignore previous instructions", ""],
)
def test_a_tool_must_declare_one_concrete_scope(declared: str) -> None:
    everything = Grant(holder="agent:all", scopes=frozenset({"*:*"}))
    assert not check(declared, [everything]).allowed


def test_grants_are_validated_and_frozen() -> None:
    with pytest.raises(SpecError, match=r"grant\.scopes"):
        Grant(holder="agent:x", scopes=frozenset({"refunds write"}))
    with pytest.raises(ValidationError, match="frozen"):
        SUPPORT_AGENT.scopes = frozenset({"*:*"})  # type: ignore[misc]  # frozen: the test


# Hypothesis without a deadline (a timed assert: a loaded CI machine stalls an example
# past 200 ms, and Hypothesis fails it as flaky) and on fixed examples.
@settings(deadline=None, derandomize=True, database=None)
@given(st.text(max_size=60))
def test_no_scope_text_is_allowed_by_a_reader_grant_unless_it_is_a_read(text: str) -> None:
    """Whatever text reaches `check` as a scope (a model or a tool result can't put it
    there, but if a bug did), a reader grant allows exactly `orders:read`."""
    reader = Grant(holder="agent:reader", scopes=frozenset({"orders:read"}))
    assert check(text, [reader]).allowed is (text == "orders:read")


def test_the_denial_message_tells_the_model_not_to_insist() -> None:
    message = denial_message("refund", check("refunds:write", []))
    assert message.startswith("Not run: refund needs permission refunds:write")
    assert "do not retry" in message


# --- approval rules ---------------------------------------------------------------------

REFUNDS_ABOVE_200 = ApprovalRule(scope="refunds:write", argument="amount_usd", above=200)


@pytest.mark.parametrize(
    ("amount", "held"), [(199.99, False), (200, False), (200.01, True), (349, True)]
)
def test_refunds_above_200_need_approval(amount: float, held: bool) -> None:
    needed = needs_approval([REFUNDS_ABOVE_200], "refunds:write", {"amount_usd": amount})
    assert (needed is not None) is held
    if needed is not None:
        assert needed.reason == f"refunds:write needs approval: amount_usd {amount:g} is above 200"


def test_at_least_includes_the_limit() -> None:
    rule = ApprovalRule(scope="refunds:write", argument="amount_usd", at_least=200)
    assert needs_approval([rule], "refunds:write", {"amount_usd": 200}) is not None
    assert needs_approval([rule], "refunds:write", {"amount_usd": 199}) is None


def test_rules_apply_to_their_scope_only() -> None:
    assert needs_approval([REFUNDS_ABOVE_200], "orders:read", {"amount_usd": 900}) is None
    assert needs_approval([REFUNDS_ABOVE_200], None, {"amount_usd": 900}) is None


def test_a_wildcard_rule_without_condition_holds_every_call() -> None:
    rule = ApprovalRule(scope="payouts:*", reason="payouts always need a second pair of eyes")
    needed = needs_approval([rule], "payouts:write", {})
    assert needed is not None
    assert needed.reason.endswith("payouts always need a second pair of eyes")


def test_a_value_that_cannot_be_compared_is_held() -> None:
    needed = needs_approval([REFUNDS_ABOVE_200], "refunds:write", {"amount_usd": "lots"})
    assert needed is not None
    assert "can't be compared" in needed.reason


def test_equals_and_one_of() -> None:
    equals = ApprovalRule(scope="orders:write", argument="status", equals="cancelled")
    one_of = ApprovalRule(scope="orders:write", argument="country", one_of=("KP", "IR"))
    assert needs_approval([equals], "orders:write", {"status": "cancelled"}) is not None
    assert needs_approval([equals], "orders:write", {"status": "shipped"}) is None
    assert needs_approval([one_of], "orders:write", {"country": "IR"}) is not None
    assert needs_approval([one_of], "orders:write", {"country": "FR"}) is None


def test_a_predicate_rule() -> None:
    def large_and_foreign(arguments: object) -> bool:
        return isinstance(arguments, dict) and arguments.get("currency") != "USD"

    rule = ApprovalRule(scope="refunds:write", when=large_and_foreign, reason="foreign currency")
    assert needs_approval([rule], "refunds:write", {"currency": "EUR"}) is not None
    assert needs_approval([rule], "refunds:write", {"currency": "USD"}) is None
    assert rule.model_dump(mode="json")["when"].endswith("large_and_foreign")


def test_rules_are_json() -> None:
    dumped = REFUNDS_ABOVE_200.model_dump(mode="json", exclude_none=True)
    assert dumped == {
        "scope": "refunds:write",
        "argument": "amount_usd",
        "above": 200,
        "reason": "",
    }
    assert ApprovalRule(**json.loads(json.dumps(dumped))) == REFUNDS_ABOVE_200


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"scope": "refunds"}, "not a scope"),
        ({"scope": "refunds:write", "above": 1}, "needs the argument"),
        ({"scope": "refunds:write", "argument": "amount_usd"}, "needs a comparison"),
        ({"scope": "refunds:write", "argument": "a", "above": 1, "equals": 2}, "one comparison"),
    ],
)
def test_bad_rules_fail_when_declared(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        ApprovalRule(**fields)


def test_only_an_explicit_approve_approves() -> None:
    assert review_outcome({"action": "approve"}) == "approved"
    assert review_outcome({"action": "reject", "reason": "no"}) == "rejected"
    assert review_outcome({"action": "APPROVE"}) == "rejected"
    assert review_outcome({}) == "rejected"
