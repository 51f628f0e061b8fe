"""PiiGuard: checksummed detection, masking as the fix, banned phrases/topics, length."""

from __future__ import annotations

import json

import pytest

from tierflow.guardrails import PiiGuard
from tierflow.guardrails.pii.detectors import (
    dni_valid,
    find_cards,
    find_ibans,
    find_national_ids,
    find_phones,
    iban_valid,
    luhn_valid,
    nir_valid,
)

# (text containing personal data, its mask in the fixed text, a word of the reason)
FLAGGED = [
    ("Write to john.doe+shop@gmail.com today.", "Write to [EMAIL] today.", "email address"),
    ("Card 4111 1111 1111 1111 was charged.", "Card [CARD] was charged.", "ending 1111"),
    ("Card 4111-1111-1111-1111.", "Card [CARD].", "card number"),
    ("Amex 3782 822463 10005 on file", "Amex [CARD] on file", "card number"),
    ("paid with 5555555555554444", "paid with [CARD]", "card number"),
    ("IBAN FR76 3000 6000 0112 3456 7890 189, thanks", "IBAN [IBAN], thanks", "IBAN"),
    ("to DE89370400440532013000.", "to [IBAN].", "IBAN"),
    ("GB82 WEST 1234 5698 7654 32", "[IBAN]", "IBAN"),
    ("Call +33 6 12 34 56 78.", "Call [PHONE].", "phone number"),
    ("Call +1 (555) 123-4567 now", "Call [PHONE] now", "phone number"),
    ("Call (555) 123-4567", "Call [PHONE]", "phone number"),
    ("or 555.123.4567", "or [PHONE]", "phone number"),
    ("Tel 06 12 34 56 78", "Tel [PHONE]", "phone number"),
    ("London 020 7946 0958", "London [PHONE]", "phone number"),
    ("SSN 123-45-6789.", "SSN [NATIONAL ID].", "US social security number"),
    ("NIR 2 55 08 14 168 025 38", "NIR [NATIONAL ID]", "French social security number"),
    ("NIR 255081416802538", "NIR [NATIONAL ID]", "NIR"),
    ("DNI 12345678Z", "DNI [NATIONAL ID]", "Spanish DNI/NIE"),
    ("NIE X-1234567-L", "NIE [NATIONAL ID]", "Spanish DNI/NIE"),
]

# Numbers a support answer is full of, that are not personal data.
CLEAN = [
    "Your order 1042 shipped on 2026-11-20 with DHL, tracking DHL-558201.",
    "UPS tracking 1Z-4471-0932; FedEx tracking 123456789012.",
    "The total was $398.00 for 3 items; refund of $349.00 recorded.",
    "Reference 4111111111111112 (not a card: it fails Luhn).",
    "Dates 2026-11-18 2026-11-20 2026-11-25 and 2026-11-26.",
    "Not an IBAN: FR76 3000 6000 0112 3456 7890 188.",
    "Not an SSN: 000-12-3456, 666-12-3456 or 123-00-4567.",
    "Not a DNI: 12345678A.",
    "Version 1.2.3.4, build 20261126, ISBN 978-3-16-148410-0.",
    "Express shipping takes 1-2 business days for $9.90.",
]


@pytest.mark.parametrize(("text", "fixed", "word"), FLAGGED)
def test_personal_data_is_flagged_and_masked(text: str, fixed: str, word: str) -> None:
    verdict = PiiGuard().check(text)
    assert not verdict.ok
    assert word in verdict.reason
    assert verdict.fixed == fixed
    assert PiiGuard().check(fixed).ok  # the fix passes


@pytest.mark.parametrize("text", CLEAN)
def test_ids_dates_amounts_and_near_misses_are_not_personal_data(text: str) -> None:
    verdict = PiiGuard().check(text)
    assert verdict.ok, verdict.reason
    assert verdict.fixed is None


def test_the_reason_never_repeats_the_personal_data() -> None:
    text = "Card 4111 1111 1111 1111, mail jane@corp.example, IBAN DE89370400440532013000"
    verdict = PiiGuard().check(text)
    assert "4111 1111" not in verdict.reason
    assert "jane@" not in verdict.reason
    assert "DE8937" not in verdict.reason
    assert "card number (ending 1111)" in verdict.reason
    assert "email address (j…@corp.example)" in verdict.reason


def test_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")
    assert nir_valid(("2", "55", "08", "14", "168", "025", "38"))
    assert nir_valid(("1", "69", "05", "2A", "123", "456", "77")) is (
        97 - int("1690519123456") % 97 == 77
    )
    assert dni_valid("", "12345678", "Z")
    assert dni_valid("X", "1234567", "L")
    assert not dni_valid("", "12345678", "A")


def test_detectors_need_the_checksum_not_only_the_shape() -> None:
    assert list(find_cards("4111 1111 1111 1112")) == []
    assert list(find_ibans("FR7630006000011234567890188")) == []
    assert list(find_ibans("ZZ7630006000011234567890189")) == []  # no such country
    assert list(find_national_ids("1 85 05 78 006 084 36")) == []  # wrong NIR key
    assert list(find_phones("0612345678 and 5551234567")) == []  # bare digit runs


def test_allowed_values_and_domains_pass() -> None:
    guard = PiiGuard(allow=["support@shop.example", "@help.shop.example", "+1 555 010 0000"])
    text = "Write to support@shop.example or team@help.shop.example, or call +1 555 010 0000."
    assert guard.check(text).ok
    assert not guard.check("or alice@example.com").ok


def test_detect_selects_the_kinds() -> None:
    guard = PiiGuard(detect=["card"])
    assert guard.check("mail alice@example.com").ok
    assert not guard.check("card 4111111111111111").ok
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PiiGuard(detect=["passport"])


def test_banned_phrases_and_topics() -> None:
    guard = PiiGuard(
        banned_phrases=["guaranteed", "100% safe"],
        banned_topics={"legal advice": ["lawsuit", "sue"], "competitors": ["Acme Corp"]},
    )
    verdict = guard.check("This is GUARANTEED 100% safe; ask acme   corp, or sue them.")
    assert not verdict.ok
    assert "banned phrase 'guaranteed'" in verdict.reason
    assert "banned phrase '100% safe'" in verdict.reason
    assert "banned topic 'competitors' ('acme corp')" in verdict.reason
    assert "banned topic 'legal advice' ('sue')" in verdict.reason
    assert verdict.fixed == "This is [removed] [removed]; ask [removed], or [removed] them."
    # Word boundaries: "pursue" and "guaranteedly" are not the banned words.
    assert guard.check("We pursue this; the guarantee holds.").ok


def test_maximum_length_cuts_on_a_word() -> None:
    guard = PiiGuard(max_chars=30)
    text = "Your refund is recorded and will arrive within five business days."
    verdict = guard.check(text)
    assert not verdict.ok
    assert f"it is {len(text)} characters long; the maximum is 30" in verdict.reason
    assert verdict.fixed == "Your refund is recorded and…"
    assert verdict.fixed is not None and len(verdict.fixed) <= 30
    assert guard.check("Short enough.").ok


def test_json_answers_stay_json_when_masked() -> None:
    answer = json.dumps({"answer": "We wrote to alice@example.com.", "order_ids": [1042]})
    verdict = PiiGuard().check(answer)
    assert verdict.fixed is not None
    assert json.loads(verdict.fixed)["answer"] == "We wrote to [EMAIL]."
    # Cutting would break the JSON, so there is no fix for a JSON answer that is too long.
    long_answer = json.dumps({"answer": "word " * 50})
    assert PiiGuard(max_chars=40).check(long_answer).fixed is None


def test_spec() -> None:
    spec = PiiGuard(banned_phrases=["x"], max_chars=10, on_fail="fix").spec()
    assert spec["kind"] == "pii"
    assert spec["on_fail"] == "fix"
    assert spec["detect"] == ["email", "card", "iban", "national_id", "phone"]
    assert spec["banned_phrases"] == ["x"]
    json.dumps(spec)
