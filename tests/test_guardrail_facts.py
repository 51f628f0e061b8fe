"""FactsGuard on the example shop: a wrong amount, a wrong id and a wrong policy fact are
each caught and reported with the correct value; the correct answer passes. Then the
claim kinds one by one, and what is deliberately not a claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from test_guardrail_sql_corpus import _load_shop

from tierflow.guardrails import FactsGuard
from tierflow.guardrails.facts.values import find_amounts, find_dates

shop = _load_shop()

POLICY_FACTS: dict[str | tuple[str, ...], str] = {
    "return window": "30 days",
    ("express shipping", "express delivery"): "$9.90",
    "damage report window": "14 days",
    "warranty": "2 years",
}
REQUEST = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)
# The example's own final answer for the damaged-item scenario (examples/support_desk.py).
CORRECT = json.dumps(
    {
        "answer": "I am sorry the Espresso Machine Pro arrived damaged. I have recorded a full "
        "refund of $349.00 for it on order 1042, to your original payment method; you do "
        "not need to send it back. As the amount is above $200, a senior agent reviews it "
        "before it is sent.",
        "order_ids": [1042],
        "actions": ["refund recorded: $349.00 on order 1042"],
    }
)


@pytest.fixture(scope="module")
def run_context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The damaged-item run's state as the guard sees it: the request and the real tool
    results from the example shop."""
    db = shop.ensure_shop_db(tmp_path_factory.mktemp("facts") / "shop.db")
    results = [
        ("order_details", shop.order_details(db, 1042)),
        ("search_policies", shop.search_kb("damaged item refund")),
        ("refund", shop.refund(db, 1042, 349.0, "arrived damaged", idempotency_key="k1")),
    ]
    messages: list[Any] = [HumanMessage(REQUEST), AIMessage("", tool_calls=[])]
    messages += [
        ToolMessage(json.dumps(value), tool_call_id=f"c{i}", name=name)
        for i, (name, value) in enumerate(results)
    ]
    return {"messages": messages, "objective": REQUEST}


@pytest.fixture(scope="module")
def guard() -> FactsGuard:
    return FactsGuard(POLICY_FACTS, documents={a.id: a.text for a in shop.KB_ARTICLES})


def test_the_correct_answer_passes(guard: FactsGuard, run_context: dict[str, Any]) -> None:
    verdict = guard.check(CORRECT, run_context)
    assert verdict.ok, verdict.reason
    # $349.00 (twice: one claim), $200, order 1042 (text and order_ids: one claim)
    assert verdict.reason == "3 checkable claims match the sources"


def test_a_wrong_amount_is_reported_with_the_true_one(
    guard: FactsGuard, run_context: dict[str, Any]
) -> None:
    verdict = guard.check(CORRECT.replace("$349.00", "$359.00"), run_context)
    assert not verdict.ok
    assert verdict.fixed is None
    assert verdict.reason.startswith(
        "1 claim not backed by the sources: amount $359.00 (order 1042)"
    )
    assert (
        "for order 1042 the sources have $349.00 at items[0].unit_price_usd "
        "(Espresso Machine Pro) in order_details" in verdict.reason
    )


def test_a_wrong_order_id_is_reported_with_the_ids_the_sources_have(
    guard: FactsGuard, run_context: dict[str, Any]
) -> None:
    verdict = guard.check(CORRECT.replace("1042", "1024"), run_context)
    assert not verdict.ok
    assert (
        "order 1024 in field answer is not in any source; the orders in the sources are "
        "1042 (order_details, refund)" in verdict.reason
    )


def test_a_wrong_policy_fact_is_reported_with_the_declared_value(
    guard: FactsGuard, run_context: dict[str, Any]
) -> None:
    answer = (
        "Our return window is 14 days. Express delivery costs $12.00 and takes 1-2 days. "
        "The warranty lasts 3 years."
    )
    verdict = guard.check(answer, run_context)
    assert not verdict.ok
    assert "'return window' is 30 days (knowledge base), not 14 days" in verdict.reason
    assert "'express shipping' is $9.90 (knowledge base), not $12.00" in verdict.reason
    assert "'warranty' is 2 years (knowledge base), not 3 years" in verdict.reason
    assert "amount $12.00 is not in any source; the closest amounts in the sources: $9.90" in (
        verdict.reason
    )


def test_the_right_policy_facts_pass(guard: FactsGuard) -> None:
    answer = (
        "The return window is 30 days from delivery. Express shipping takes 1-2 business "
        "days for $9.90; standard shipping costs $4.90. Our warranty covers 2 years."
    )
    verdict = guard.check(answer, {})
    assert verdict.ok, verdict.reason


def test_dates_codes_and_quantities(guard: FactsGuard, run_context: dict[str, Any]) -> None:
    right = (
        "Order 1042 shipped on November 7, 2026 with UPS (tracking number 1Z-4471-0932) and "
        "was delivered on 11/12/2026: 1 Espresso Machine Pro (KT-ESP-01) and 2 Ceramic Cup "
        "Sets (KT-CUP-02), $49.00 for the cups."
    )
    assert guard.check(right, run_context).ok, guard.check(right, run_context).reason
    wrong = (
        "Order 1042 was delivered on 2026-11-13 with 3 Ceramic Cup Sets (KT-CUP-03), "
        "tracking number 1Z-4471-0933."
    )
    reason = guard.check(wrong, run_context).reason
    assert reason.startswith("4 claims not backed by the sources")
    assert "date 2026-11-13 (order 1042) is not in any source; for order 1042 the sources " in (
        reason
    )
    assert "2026-11-12 at delivered_on in order_details" in reason
    assert "code KT-CUP-03 (order 1042) is not in any source; codes in the sources: KT-CUP-02" in (
        reason
    )
    assert "code 1Z-4471-0933" in reason
    assert "quantity '3 Ceramic Cup Sets' (order 1042) is not in any source; Ceramic Cup Set " in (
        reason
    )
    assert "has quantity 2 (at items[1] in order_details)" in reason


def test_the_request_backs_ids_but_not_amounts(guard: FactsGuard) -> None:
    context = {"objective": "Where is order 1099? I paid $75.00.", "messages": []}
    assert guard.check("I can't find order 1099 yet.", context).ok
    verdict = guard.check("You paid $75.00 for order 1099.", context)
    assert "amount $75.00 (order 1099) is not in any source" in verdict.reason
    assert "order 1099 is not" not in verdict.reason


def test_tool_errors_are_sources_too(guard: FactsGuard) -> None:
    error = "Error: No order with id 1070. Order ids are numbers between 1000 and 1599."
    context = {"messages": [ToolMessage(error, tool_call_id="c", name="order_details")]}
    assert guard.check("There is no order 1070; order ids run from 1000 to 1599.", context).ok


def test_messages_as_role_dicts_and_content_blocks() -> None:
    guard = FactsGuard()
    context = {
        "messages": [
            {"role": "tool", "name": "invoice", "content": [{"type": "text", "text": "€19,90"}]},
            {"role": "user", "content": "order 5555 costs $1"},
        ]
    }
    assert guard.check("Your invoice is 19.90 EUR.", context).ok
    assert not guard.check("Your invoice is €19.99.", context).ok
    assert not guard.check("It costs $1.00.", context).ok  # user messages are not sources


def test_durations_are_claims_only_when_asked(guard: FactsGuard) -> None:
    answer = "Refunds are issued within 3 business days."
    assert guard.check(answer, {}).ok
    strict = FactsGuard(documents=[shop.KB_ARTICLES[0].text], check=["durations"])
    verdict = strict.check(answer, {})
    assert "duration 3 business days is not in any source" in verdict.reason
    assert "5 days in knowledge base #1" in verdict.reason
    assert strict.check("Refunds are issued within 5 business days.", {}).ok


def test_prose_and_unitless_numbers_are_not_claims(guard: FactsGuard) -> None:
    answer = (
        "Thanks for waiting! We have 2 options for you, and 100% of our customers may "
        "return items. Call us any day after 5."
    )
    verdict = guard.check(answer, {})
    assert verdict.ok
    assert verdict.reason == "0 checkable claims match the sources"


def test_value_parsing() -> None:
    amounts = [str(a) for a, _, _ in find_amounts("$1,234.50, 349 USD, €19,90, 5 dollars")]
    assert amounts == ["$1,234.50", "$349.00", "€19.90", "$5.00"]
    days = [sorted(d) for d, _, _ in find_dates("2026-11-20, Nov 5, 20 November 2026, 03/04/2026")]
    assert days == [
        [(2026, 11, 20)],
        [(None, 11, 5)],
        [(2026, 11, 20)],
        [(2026, 3, 4), (2026, 4, 3)],
    ]
    assert list(find_dates("They may 5 times")) == []  # lower-case "may" is a verb


def test_options_are_validated_and_described(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown claim kinds"):
        FactsGuard(check=["vibes"])
    spec = FactsGuard(
        POLICY_FACTS, documents={"returns": "x"}, id_words=["order", "invoice"]
    ).spec()
    assert spec["kind"] == "facts"
    assert spec["knowledge"]["express shipping | express delivery"] == "$9.90"
    assert spec["check"] == ["ids", "codes", "amounts", "dates", "quantities", "facts"]
    assert spec["id_words"] == ["order", "invoice"]
    json.dumps(spec)


# The example's other demo answers (copied from examples/support_desk.py) with the tool
# results their scenarios produce: the facts guard must not cry wolf on honest answers.
DEMO_ANSWERS = [
    (
        "What is your return window?",
        [("search_policies", lambda db: shop.search_kb("return window"))],
        "You can return items within 30 days of delivery for a full refund to your original "
        "payment method, as long as they are unused and in their original packaging.",
    ),
    (
        "Where is my order #1007? It still hasn't arrived.",
        [
            ("order_details", lambda db: "Error: No order with id 1070. Order ids are numbers "
             "between 1000 and 1599; check the id in the customer's message."),
            ("order_details", lambda db: shop.order_details(db, 1007)),
        ],
        "Your order 1007 (Trail Running Shoes) shipped with DHL on 2026-11-20. Its tracking "
        "number is DHL-558201; it has not been marked delivered yet.",
    ),
    (
        "Do you ship to Canada, and how fast is express shipping?",
        [("search_policies", lambda db: shop.search_kb("shipping Canada express"))],
        "Yes, we ship to Canada. Express shipping takes 1-2 business days and costs $9.90; "
        "orders to Canada may take 2 extra days.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_text", "calls", "answer"), DEMO_ANSWERS)
def test_the_demo_answers_pass(
    guard: FactsGuard,
    tmp_path: Path,
    request_text: str,
    calls: list[tuple[str, Any]],
    answer: str,
) -> None:
    db = shop.ensure_shop_db(tmp_path / "shop.db")
    messages = []
    for index, (name, call) in enumerate(calls):
        result = call(db)
        content = result if isinstance(result, str) else json.dumps(result)
        messages.append(ToolMessage(content, tool_call_id=f"c{index}", name=name))
    context = {"objective": request_text, "messages": messages}
    body = json.dumps({"answer": answer, "order_ids": [], "actions": []})
    verdict = guard.check(body, context)
    assert verdict.ok, verdict.reason
