"""FactsGuard over a corpus of ordinary phrasings (tierflow issue 11).

Each VARIANTS entry is one surface form of an amount, an id or a policy fact: the wrong
value must be flagged and the right one must pass. Every entry failed before the guard
normalised its input and learnt these forms (the wrong value went unnoticed, or the
right one was flagged). CONTROLS were already handled and must stay so; HONEST answers
(no claim, or only true ones, in forms close to the new ones) must pass.

The run: the damaged-item scenario of the example shop (order 1042: an Espresso Machine
Pro at $349.00, two Ceramic Cup Sets at $24.50, total $398.00, a $349.00 refund), plus an
invoice tool result for the larger amounts. The tests use only the guard's public API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from test_guardrail_sql_corpus import _load_shop

from tierflow.guardrails import FactsGuard

shop = _load_shop()

POLICY_FACTS: dict[str | tuple[str, ...], str] = {
    "return window": "30 days",
    ("express shipping", "express delivery"): "$9.90",
    "warranty": "2 years",
}
INVOICE = {
    "invoice_id": 7781,
    "order_id": 1042,
    "previous_order_id": 1007,
    "total_usd": 1234.5,
    "deposit_eur": 1234.5,
    "contract_value_usd": 2500000,
}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# (name, wrong answer, right answer)
AMOUNTS = [
    ("words", "The refund is three hundred fifty-nine dollars.",
     "The refund is three hundred forty-nine dollars."),
    ("words with and", "We refunded three hundred and fifty-nine dollars.",
     "We refunded three hundred and forty-nine dollars."),
    ("capitalised words", "Refund: Three Hundred Fifty Nine Dollars.",
     "Refund: Three Hundred Forty Nine Dollars."),
    ("words, US dollars", "You get three hundred fifty-nine US dollars back.",
     "You get three hundred forty-nine US dollars back."),
    ("words, bucks", "That's three hundred fifty-nine bucks back.",
     "That's three hundred forty-nine bucks back."),
    ("words with cents", "Each cup set was twenty-four dollars and sixty cents.",
     "Each cup set was twenty-four dollars and fifty cents."),
    ("digits with cents", "Each cup set was 24 dollars and 60 cents.",
     "Each cup set was 24 dollars and 50 cents."),
    ("words, thousands and cents",
     "The invoice is one thousand two hundred thirty-four dollars and sixty cents.",
     "The invoice is one thousand two hundred thirty-four dollars and fifty cents."),
    ("words, millions", "The contract is worth two million six hundred thousand dollars.",
     "The contract is worth two million five hundred thousand dollars."),
    ("suffix $", "Refund of 359$ recorded.", "Refund of 349$ recorded."),
    ("suffix $ after a space", "Refund of 359 $ recorded.", "Refund of 349 $ recorded."),
    ("suffix US$", "Refund of 359 US$ recorded.", "Refund of 349 US$ recorded."),
    ("decimal comma, suffix $", "Refund of 359,00 $ recorded.", "Refund of 349,00 $ recorded."),
    ("bucks", "You'll get 359 bucks back.", "You'll get 349 bucks back."),
    ("fullwidth", "Refund: ＄３５９.", "Refund: ＄３４９."),
    ("fullwidth digits and code", "Refund: ３５９ ＵＳＤ.", "Refund: ３４９ ＵＳＤ."),
    ("code in brackets", "Refund: 359.00 (USD).", "Refund: 349.00 (USD)."),
    ("lower-case code before", "Refund: usd 359.", "Refund: usd 349."),
    ("lower-case code after", "Refund: 359 usd.", "Refund: 349 usd."),
    ("code with a colon", "Refund USD: 359.", "Refund USD: 349."),
    ("US dollars", "We refund 359.00 US dollars.", "We refund 349.00 US dollars."),
    ("capitalised Dollars", "We refund 359 Dollars.", "We refund 349 Dollars."),
    ("upper-case DOLLARS", "We refund 359 DOLLARS.", "We refund 349 DOLLARS."),
    ("zero-width space in the number", "Refund: $3\u200b59.", "Refund: $3\u200b49."),
    ("European thousands", "Your deposit was 1.235,50 €.", "Your deposit was 1.234,50 €."),
    ("space thousands", "Your deposit was 1 235,50 EUR.", "Your deposit was 1 234,50 EUR."),
    ("apostrophe thousands", "The invoice is 1'235.50 USD.", "The invoice is 1'234.50 USD."),
    ("no-break space thousands", "The invoice is $1\u00a0235.50.",
     "The invoice is $1\u00a0234.50."),
    ("millions with a word", "The contract is worth $2.6 million.",
     "The contract is worth $2.5 million."),
    ("millions abbreviated", "The contract is worth 2.6M USD.", "The contract is worth 2.5M USD."),
    ("JSON number under a money key", _json({"answer": "Refund recorded.", "refund_usd": 359}),
     _json({"answer": "Refund recorded.", "refund_usd": 349})),
    ("JSON amount with a currency field",
     _json({"refund": {"order_id": 1042, "amount": 359.0, "currency": "USD"}}),
     _json({"refund": {"order_id": 1042, "amount": 349.0, "currency": "USD"}})),
    ("JSON array answer", _json([{"order_id": 1042, "total_usd": 359}]),
     _json([{"order_id": 1042, "total_usd": 398}])),
    ("JSON bare number string", _json({"order_id": 1042, "total": "359.00"}),
     _json({"order_id": 1042, "total": "398.00"})),
    ("JSON nested text", _json({"summary": {"refund": "359 bucks"}}),
     _json({"summary": {"refund": "349 bucks"}})),
    ("JSON line item price",
     _json({"items": [{"name": "Espresso Machine Pro", "quantity": 1, "unit_price_usd": 359}]}),
     _json({"items": [{"name": "Espresso Machine Pro", "quantity": 1, "unit_price_usd": 349}]})),
    ("JSON line item quantity", _json({"items": [{"name": "Ceramic Cup Set", "quantity": 3}]}),
     _json({"items": [{"name": "Ceramic Cup Set", "quantity": 2}]})),
]  # fmt: skip

IDS = [
    ("thousands comma", "Your order 1,024 is refunded.", "Your order 1,042 is refunded."),
    ("no.", "Your order no. 1024 is refunded.", "Your order no. 1042 is refunded."),
    ("No.", "Order No. 1024 is refunded.", "Order No. 1042 is refunded."),
    ("nr.", "Order nr. 1024 is refunded.", "Order nr. 1042 is refunded."),
    ("number:", "Your order number: 1024.", "Your order number: 1042."),
    ("ID:", "Order ID: 1024 is refunded.", "Order ID: 1042 is refunded."),
    ("colon", "Order: 1024, refunded.", "Order: 1042, refunded."),
    ("hyphen", "Order-1024 is refunded.", "Order-1042 is refunded."),
    ("ORD prefix", "ORD1024 is refunded.", "ORD1042 is refunded."),
    ("ORD- prefix", "ORD-1024 is refunded.", "ORD-1042 is refunded."),
    ("ord. prefix", "Refund for ord. 1024 done.", "Refund for ord. 1042 done."),
    ("n°", "Order n° 1024 is refunded.", "Order n° 1042 is refunded."),
    ("nº", "Order nº 1024 is refunded.", "Order nº 1042 is refunded."),
    ("brackets", "Your order (1024) is refunded.", "Your order (1042) is refunded."),
    ("hash with thousands", "Your order #1,024 is refunded.", "Your order #1,042 is refunded."),
    ("fullwidth digits", "Your order １０２４ is refunded.", "Your order １０４２ is refunded."),
    ("zero-width space", "Your order\u200b 1024 is refunded.",
     "Your order\u200b 1042 is refunded."),
    ("JSON id as a string", _json({"answer": "Refunded.", "order_id": "1024"}),
     _json({"answer": "Refunded.", "order_id": "1042"})),
    ("JSON array of records", _json([{"order_id": 1024, "status": "refunded"}]),
     _json([{"order_id": 1042, "status": "refunded"}])),
]  # fmt: skip

FACTS = [
    ("fact amount in bucks", "Express shipping costs 12 bucks.",
     "Express shipping costs 9.90 dollars."),
    ("fact amount, suffix $", "Express delivery is 12$.", "Express delivery is 9.90$."),
    ("fact duration in words", "Our return window is fourteen days.",
     "Our return window is thirty days."),
    ("fact duration, capitalised words", "The warranty: Three years.",
     "The warranty: Two years."),
]  # fmt: skip

VARIANTS = [("amount", *v) for v in AMOUNTS] + [("id", *v) for v in IDS]
VARIANTS += [("fact", *v) for v in FACTS]

# Forms the guard handled before; they must stay handled.
CONTROLS = [
    ("$ prefix", "Refund of $359.00.", "Refund of $349.00."),
    ("code suffix", "Refund of 359 USD.", "Refund of 349 USD."),
    ("code prefix", "Refund of USD 359.", "Refund of USD 349."),
    ("dollars", "Refund of 359 dollars.", "Refund of 349 dollars."),
    ("decimal comma", "Refund of $359,00.", "Refund of $349,00."),
    ("US$", "Refund of US$359.", "Refund of US$349."),
    ("thousands comma", "The invoice is $1,235.50.", "The invoice is $1,234.50."),
    ("order id", "Order 1024 is refunded.", "Order 1042 is refunded."),
    ("order #", "Order #1024 is refunded.", "Order #1042 is refunded."),
    ("hash", "Refund for #1024 done.", "Refund for #1042 done."),
    ("order list", "Orders 1024 and 1007 are refunded.", "Orders 1042 and 1007 are refunded."),
    ("JSON ids", _json({"answer": "Refunded.", "order_ids": [1024]}),
     _json({"answer": "Refunded.", "order_ids": [1042]})),
    ("fact", "Our return window is 14 days.", "Our return window is 30 days."),
]  # fmt: skip

# Honest answers near the new forms: no false alarm.
HONEST = [
    "We refunded three hundred forty-nine dollars; the other items cost nothing extra.",
    "In order to help, I checked order 1042: it was delivered on 2026-11-12.",
    "Your order 1042 has 2 items. We processed 1,024 requests today.",
    "Orders 1042 and 1007 are both on their way.",
    "Order No. 1042 was refunded. No. 1042 is the only order on file.",
    "The Ceramic Cup Set cost 24.50 dollars each, 49 dollars for two.",
    "A refund of one hundred percent is our policy for damaged items.",
    "We'll get back to you in one or two days; thanks for your patience.",
    "I looked at it at 10.30 and again at noon: all 3 emails were answered.",
    "Your refund (ORD1042) of 349 bucks is on its way: USD 349.00, no fees.",
    _json({"answer": "Refunded.", "order_ids": [1042], "total_items": 3, "refund_days": 5}),
    _json({"answer": "Refunded.", "refund_usd": 0, "shipping_fee": 0}),
    _json([{"order_id": 1042, "total_usd": 398.0, "refunded_usd": 349.0}]),
]


@pytest.fixture(scope="module")
def guard() -> FactsGuard:
    return FactsGuard(POLICY_FACTS, documents={a.id: a.text for a in shop.KB_ARTICLES})


@pytest.fixture(scope="module")
def run_context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = shop.ensure_shop_db(tmp_path_factory.mktemp("facts_corpus") / "shop.db")
    results = [
        ("order_details", shop.order_details(db, 1042)),
        ("search_policies", shop.search_kb("damaged item refund")),
        ("refund", shop.refund(db, 1042, 349.0, "arrived damaged", idempotency_key="k1")),
        ("invoice", INVOICE),
    ]
    messages = [
        ToolMessage(json.dumps(value), tool_call_id=f"c{i}", name=name)
        for i, (name, value) in enumerate(results)
    ]
    return {"messages": messages, "objective": "The espresso machine from order 1042 broke."}


def _ids(entries: Sequence[tuple[str, ...]]) -> list[str]:
    return [entry[-3] for entry in entries]


@pytest.mark.parametrize(("kind", "name", "wrong", "right"), VARIANTS, ids=_ids(VARIANTS))
def test_a_variant_is_flagged_when_wrong_and_passes_when_right(
    guard: FactsGuard, run_context: dict[str, Any], kind: str, name: str, wrong: str, right: str
) -> None:
    assert not guard.check(wrong, run_context).ok, f"{kind} {name}: {wrong!r} not flagged"
    verdict = guard.check(right, run_context)
    assert verdict.ok, f"{kind} {name}: {right!r}: {verdict.reason}"


@pytest.mark.parametrize(("name", "wrong", "right"), CONTROLS, ids=_ids(CONTROLS))
def test_forms_handled_before_still_are(
    guard: FactsGuard, run_context: dict[str, Any], name: str, wrong: str, right: str
) -> None:
    assert not guard.check(wrong, run_context).ok, name
    assert guard.check(right, run_context).ok, name


@pytest.mark.parametrize("answer", HONEST)
def test_honest_answers_pass(guard: FactsGuard, run_context: dict[str, Any], answer: str) -> None:
    verdict = guard.check(answer, run_context)
    assert verdict.ok, verdict.reason


def test_corpus_size() -> None:
    assert len(VARIANTS) >= 35
    assert len({name for _, name, _, _ in VARIANTS}) == len(VARIANTS)


def test_a_wrong_value_in_a_json_answer_is_named_by_its_path(
    guard: FactsGuard, run_context: dict[str, Any]
) -> None:
    answer = _json(
        {
            "answer": "Your refund is recorded.",
            "refund": {"order_id": 1042, "amount_usd": 359.0},
            "items": [{"name": "Ceramic Cup Set", "quantity": 3}],
        }
    )
    reason = guard.check(answer, run_context).reason
    assert reason.startswith("2 claims not backed by the sources")
    assert (
        "amount $359.00 (order 1042) in field refund.amount_usd is not in any source; for "
        "order 1042 the sources have $349.00 at items[0].unit_price_usd (Espresso Machine Pro) "
        "in order_details" in reason
    )
    assert (
        "quantity '3 × ceramic cup set' (order 1042) in field items[0] is not in any source; "
        "Ceramic Cup Set has quantity 2 (at items[1] in order_details)" in reason
    )
