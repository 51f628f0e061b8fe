"""Properties of the facts guard over surface variants: for any amount and any of its
written forms, the true amount passes and a wrong one is flagged; the same for ids in
any of the id shapes; English number words read back to their number. Plus the id
shapes as a guard option and JSON answers named by path."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierflow.guardrails import FactsGuard
from tierflow.guardrails.facts.claims import default_id_patterns, id_word_pattern
from tierflow.guardrails.facts.words import words_value

DETERMINISTIC = settings(max_examples=200, deadline=None, derandomize=True, database=None)
GUARD = FactsGuard()

_UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def in_words(number: int, *, hyphen: bool = True, and_: bool = False) -> str:
    """English words for 0 ≤ number < 10**12, written independently of the guard."""
    if number < 20:
        return _UNITS[number]
    if number < 100:
        tens, unit = divmod(number, 10)
        return _TENS[tens] + (("-" if hyphen else " ") + _UNITS[unit] if unit else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        head = f"{_UNITS[hundreds]} hundred"
        return head + ((" and " if and_ else " ") + in_words(rest, hyphen=hyphen) if rest else "")
    for scale, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if number >= scale:
            high, rest = divmod(number, scale)
            head = f"{in_words(high, hyphen=hyphen, and_=and_)} {name}"
            return head + (" " + in_words(rest, hyphen=hyphen, and_=and_) if rest else "")
    raise AssertionError(number)


@settings(DETERMINISTIC)
@given(number=st.integers(0, 999_999_999_999), hyphen=st.booleans(), and_=st.booleans())
def test_number_words_read_back(number: int, hyphen: bool, and_: bool) -> None:
    assert words_value(in_words(number, hyphen=hyphen, and_=and_)) == number
    assert words_value(in_words(number, hyphen=hyphen, and_=and_).title()) == number


def test_number_words_that_are_not_a_number() -> None:
    assert words_value("one two") == 2  # the longest well-formed tail
    assert words_value("hundred") is None
    assert words_value("thousand million") is None
    assert words_value("a hundred") == 100
    assert words_value("nineteen hundred") == 1900


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _european(value: Decimal) -> str:
    return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def _dollars_in_words(value: Decimal) -> str:
    whole, cents = divmod(int(value * 100), 100)
    text = f"{in_words(whole)} dollars"
    return text + (f" and {in_words(cents)} cents" if cents else "")


# Written forms of a US-dollar amount.
FORMS: dict[str, Callable[[Decimal], str]] = {
    "$1,234.50": lambda v: f"${v:,.2f}",
    "1234.50 USD": lambda v: f"{v:.2f} USD",
    "USD 1,234.50": lambda v: f"USD {v:,.2f}",
    "usd 1234.50": lambda v: f"usd {v:.2f}",
    "1,234.50$": lambda v: f"{v:,.2f}$",
    "1.234,50 $": lambda v: f"{_european(v)} $",
    "1 234,50 USD": lambda v: _european(v).replace(".", " ") + " USD",
    "1'234.50 USD": lambda v: f"{v:,.2f}".replace(",", "'") + " USD",
    "1234.50 (USD)": lambda v: f"{v:.2f} (USD)",
    "1,234.50 US dollars": lambda v: f"{v:,.2f} US dollars",
    "1234.50 Dollars": lambda v: f"{v:.2f} Dollars",
    "1234.50 bucks": lambda v: f"{v:.2f} bucks",
    "fullwidth": lambda v: _fullwidth(f"${v:,.2f}"),
    "zero-width spaces": lambda v: "\u200b".join(f"${v:.2f}"),
    "words": _dollars_in_words,
    "capitalised words": lambda v: _dollars_in_words(v).title(),
}
AMOUNTS = st.decimals(min_value=1, max_value=Decimal("999999999.99"), places=2)


@settings(DETERMINISTIC)
@given(
    value=AMOUNTS,
    delta=st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal(1), Decimal(10), Decimal(999)]),
    form=st.sampled_from(sorted(FORMS)),
    as_json=st.booleans(),
)
def test_any_amount_in_any_form_passes_when_true_and_is_flagged_when_wrong(
    value: Decimal, delta: Decimal, form: str, as_json: bool
) -> None:
    context = {"messages": [{"role": "tool", "name": "invoice",
                             "content": json.dumps({"total_usd": float(value)})}]}  # fmt: skip
    write = FORMS[form]

    def answer(amount: Decimal) -> str:
        text = f"Your total is {write(amount)}, as invoiced."
        return json.dumps({"answer": text}, ensure_ascii=False) if as_json else text

    verdict = GUARD.check(answer(value), context)
    assert verdict.ok, (answer(value), verdict.reason)
    wrong = GUARD.check(answer(value + delta), context)
    assert not wrong.ok, answer(value + delta)
    assert f"amount ${value + delta:,.2f}" in wrong.reason


@settings(DETERMINISTIC)
@given(value=AMOUNTS, key=st.sampled_from(["total_usd", "refund", "amountUsd", "unit-price"]))
def test_any_amount_in_a_json_field_is_checked_and_named_by_path(value: Decimal, key: str) -> None:
    context = {"messages": [{"role": "tool", "name": "invoice",
                             "content": json.dumps({"total_usd": float(value)})}]}  # fmt: skip
    right = json.dumps({"answer": "Done.", "order": {"order_id": 1042, key: float(value)}})
    assert GUARD.check(right, {**context, "objective": "order 1042"}).ok
    wrong = json.dumps({"answer": "Done.", "order": {"order_id": 1042, key: float(value + 1)}})
    reason = GUARD.check(wrong, {**context, "objective": "order 1042"}).reason
    shown = f"${value + 1:,.2f}" if key in ("total_usd", "amountUsd") else f"{value + 1:,.2f}"
    assert f"amount {shown} (order 1042) in field order.{key} is not in any source" in reason


ID_SHAPES = {
    "order 1042": "order {}",
    "Order #1042": "Order #{}",
    "order no. 1042": "order no. {}",
    "Order No: 1042": "Order No: {}",
    "order number 1042": "order number {}",
    "order nr. 1042": "order nr. {}",
    "Order ID: 1042": "Order ID: {}",
    "Order-1042": "Order-{}",
    "order (1042)": "order ({})",
    "ORD1042": "ORD{}",
    "ORD-1042": "ORD-{}",
    "#1042": "#{}",
}


@settings(DETERMINISTIC)
@given(
    number=st.integers(100, 99_999_999),
    delta=st.integers(1, 1000),
    shape=st.sampled_from(sorted(ID_SHAPES)),
    thousands=st.booleans(),
)
def test_any_id_in_any_shape_passes_when_true_and_is_flagged_when_wrong(
    number: int, delta: int, shape: str, thousands: bool
) -> None:
    result = json.dumps({"id": number, "status": "shipped"})
    context = {"messages": [{"role": "tool", "name": "order_details", "content": result}]}

    def answer(value: int) -> str:
        digits = f"{value:,}" if thousands and not shape.startswith("ORD") else str(value)
        return f"Your {ID_SHAPES[shape].format(digits)} has shipped."

    verdict = GUARD.check(answer(number), context)
    assert verdict.ok, (answer(number), verdict.reason)
    wrong = GUARD.check(answer(number + delta), context)
    assert not wrong.ok, answer(number + delta)
    assert f"order {number + delta} is not in any source" in wrong.reason


def test_id_shapes_are_a_guard_option() -> None:
    context = {"messages": [{"role": "tool", "name": "invoices", "content": '{"id": 5512}'}]}
    custom = FactsGuard(
        id_words=["invoice"],
        id_patterns=[*default_id_patterns(["invoice"]), r"\bINV-?(?P<id>\d{3,})\b"],
    )
    assert custom.check("Invoice no. 5512 and INV-5512 are paid.", context).ok
    verdict = custom.check("INV5521 is paid.", context)
    assert "invoice 5521 is not in any source; the invoices in the sources are 5512" in (
        verdict.reason
    )
    # Order shapes are not invoice shapes: with these shapes an order number is no claim.
    assert custom.check("Order 9999 is on its way.", context).ok
    assert custom.spec()["id_patterns"][-1] == r"\bINV-?(?P<id>\d{3,})\b"
    assert "id_patterns" not in FactsGuard().spec()  # the defaults follow id_words
    # A pattern without an `id` group: every 3+ digit number of its match is an id.
    bare = FactsGuard(id_patterns=[r"\bcase \d+"])
    assert not bare.check("See case 4242.", context).ok
    with pytest.raises(ValueError, match="not a regular expression"):
        FactsGuard(id_patterns=["order ("])


def test_the_default_id_shapes() -> None:
    patterns = [re.compile(p) for p in default_id_patterns(["order"])]
    found = {
        text: [m["id"] for p in patterns for m in p.finditer(text)]
        for text in ("order 1,024", "order no. 1024", "Order-1024", "ORD1024", "#1024")
    }
    assert found == {
        "order 1,024": ["1,024"],
        "order no. 1024": ["1024"],
        "Order-1024": ["1024"],
        "ORD1024": ["1024"],
        "#1024": ["1024"],
    }
    assert re.search(id_word_pattern("support ticket"), "Support-Ticket no. 777") is not None


PHRASINGS = st.lists(
    st.sampled_from(
        ["order", "Order", "no.", "nº", "#", "ORD", "-", ":", "(", ")", "1,042", "1042", "1024",
         "$", "＄", "３４９", "349", "359", ".00", ",00", "USD", "usd", "(USD)", "bucks", "dollars",
         "three", "hundred", "and", "forty-nine", "fifty", "cents", "million", "thousand", "a",
         "twenty", "days", "to", "return window", " ", "\u200b", "\n", "{", "}", "[", "]", '"',
         '"total_usd":', '"order_id":', '"amount":', '"currency": "USD"', ","]
    ),
    max_size=60,
).map(" ".join)  # fmt: skip


@settings(DETERMINISTIC)
@given(candidate=PHRASINGS)
def test_any_phrasing_gets_a_verdict(candidate: str) -> None:
    context = {"messages": [{"role": "tool", "name": "order_details",
                             "content": json.dumps({"id": 1042, "total_usd": 349.0})}]}  # fmt: skip
    guard = FactsGuard({"return window": "30 days"})
    verdict = guard.check(candidate, context)
    assert isinstance(verdict.ok, bool)
    assert verdict.reason
