"""PiiGuard over a corpus of ordinary and evasive phrasings (tierflow issue 11).

Each VARIANTS entry writes personal data in a form the guard missed before it
normalised its input (NFKC, invisible characters removed) and learnt these shapes: it
must be flagged with the right kind, and the masked `fixed` text must pass. NEAR_MISSES
are support-answer text close to the new shapes that is not personal data. The tests use
only the guard's public API.
"""

from __future__ import annotations

import pytest

from tierflow.guardrails import PiiGuard

ZWSP, NBSP, NNBSP, SHY, THIN = "\u200b", "\u00a0", "\u202f", "\u00ad", "\u2009"

# (name, personal data as written, the word of the reason that names its kind)
EMAILS = [
    ("[at] [dot]", "john [at] gmail [dot] com"),
    ("(at)(dot) unspaced", "john(at)gmail(dot)com"),
    ("(at) (dot) spaced", "john (at) gmail (dot) com"),
    ("{at} {dot}", "john {at} gmail {dot} com"),
    ("<at> <dot>", "john <at> gmail <dot> com"),
    ("[@]", "john[@]gmail.com"),
    ("[at] and a real dot", "john [at] gmail.com"),
    ("at … dot", "john at gmail dot com"),
    ("AT … DOT", "john AT gmail DOT com"),
    ("at and a webmail domain", "john at gmail.com"),
    ("spaces around @", "john @ gmail.com"),
    ("fullwidth @", "john＠gmail.com"),
    ("fullwidth throughout", "ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ"),
    ("zero-width space before @", f"john{ZWSP}@gmail.com"),
    ("zero-width space in the domain", f"john@gm{ZWSP}ail.com"),
    ("soft hyphen in the top-level domain", f"john@gmail.c{SHY}om"),
    ("several hidden dots", "john.doe [at] example [dot] co [dot] uk"),
    ("underscore local part", "john_doe(at)example(dot)org"),
]
CARDS = [
    ("dots", "4111.1111.1111.1111"),
    ("zero-width spaces", f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111"),
    ("mixed space, hyphen, dot", "4111 1111-1111.1111"),
    ("spaced hyphens", "4111 - 1111 - 1111 - 1111"),
    ("no-break spaces", f"4111{NBSP}1111{NBSP}1111{NBSP}1111"),
    ("thin spaces", f"5555{THIN}5555{THIN}5555{THIN}4444"),
    ("soft hyphens", f"4111{SHY}1111{SHY}1111{SHY}1111"),
    ("zero-width and spaces mixed", f"4111{ZWSP}1111 1111{ZWSP}1111"),
    ("irregular groups", "4111 1111 11111111"),
    ("Amex with dots", "3782.822463.10005"),
    ("Amex mixed", "3782-822463 10005"),
]
IBANS = [
    ("hyphens", "DE89-3704-0044-0532-0130-00"),
    ("hyphens, French", "FR76-3000-6000-0112-3456-7890-189"),
    ("hyphens with letters", "GB82-WEST-1234-5698-7654-32"),
    ("spaces and hyphens mixed", "DE89 3704-0044 0532-0130 00"),
    ("dots", "DE89.3704.0044.0532.0130.00"),
    ("narrow no-break spaces", NNBSP.join(["FR76", "3000", "6000", "0112", "3456", "7890", "189"])),
    ("zero-width spaces", ZWSP.join(["DE89", "3704", "0044", "0532", "0130", "00"])),
    ("fullwidth", "ＤＥ８９３７０４００４４０５３２０１３０００"),
]
SSNS = [
    ("dots", "123.45.6789"),
    ("after SSN, no separators", "SSN: 123456789"),
    ("after social security number", "social security number is 123456789"),
    ("zero-width space", f"123{ZWSP}-45-6789"),
    ("fullwidth", "１２３－４５－６７８９"),
]
PHONES = [
    ("fullwidth", "＋３３ ６ １２ ３４ ５６ ７８"),
    ("zero-width spaces", ZWSP.join(["+33", "6", "12", "34", "56", "78"])),
]

VARIANTS = (
    [("email", *v) for v in EMAILS]
    + [("card", *v) for v in CARDS]
    + [("iban", *v) for v in IBANS]
    + [("ssn", *v) for v in SSNS]
    + [("phone", *v) for v in PHONES]
)
WORDS = {
    "email": "email address",
    "card": "card number",
    "iban": "IBAN",
    "ssn": "US social security number",
    "phone": "phone number",
}
MASKS = {
    "email": "[EMAIL]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ssn": "[NATIONAL ID]",
    "phone": "[PHONE]",
}

NEAR_MISSES = [
    "Find us at shop.example.com or visit us at www.shop.example.",
    "Log in at help.shop.example/returns to start a return.",
    "We'll look at it; dot the i's and cross the t's.",
    "Meet at 10.30 at the store, or call between 9.00 and 17.00.",
    "Reach us at our office at 5 Main St., or email me at home.",
    "Pickup at the store (at) 5pm; reply @ support.",
    "Prices: $1,234.50 at 3 stores; total 2026.11.20.",
    "Dates 20261118 20261125 and build 20261126.",
    "Order 1042 (12345678 8765 4321).",
    "Version 2026.1118.0930.1234 was released.",
    "Reference 4111.1111.1111.1112 fails Luhn.",
    "Quantities 1234 5678 9012 3456 7 are stock counts.",
    "Tracking 1Z 999 AA1 01 2345 6784 with UPS.",
    "Not an SSN: 123.456.789, 123.45-6789, 000.12.3456 or 123 00 4567.",
    "The total was $123.45 6789 points later.",
    "Your SSN is not needed; order 123456789 is.",
    "IBAN starts with the country code, e.g. DE or FR; DE89-3704 is not one.",
    "Not an IBAN: DE89-3704-0044-0532-0130-01.",
    "Call us at 1-800-FLOWERS.",
    "ISBN 978-3-16-148410-0, EAN 4006381333931.",
    f"Zero{ZWSP}width text and ｆｕｌｌｗｉｄｔｈ letters are fine.",
]


@pytest.mark.parametrize(
    ("kind", "name", "written"), VARIANTS, ids=[f"{k}: {n}" for k, n, _ in VARIANTS]
)
def test_a_variant_is_flagged_and_masked(kind: str, name: str, written: str) -> None:
    text = f"Details: {written}, thanks."
    verdict = PiiGuard().check(text)
    assert not verdict.ok, f"{kind} {name}: {written!r} not flagged"
    assert WORDS[kind] in verdict.reason
    assert verdict.fixed is not None
    assert MASKS[kind] in verdict.fixed
    assert PiiGuard().check(verdict.fixed).ok, verdict.fixed


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_personal_data(text: str) -> None:
    verdict = PiiGuard().check(text)
    assert verdict.ok, verdict.reason


def test_corpus_size() -> None:
    assert len(VARIANTS) >= 29
    assert len({(kind, name) for kind, name, _ in VARIANTS}) == len(VARIANTS)


def test_an_obfuscated_address_is_allowed_in_its_plain_form() -> None:
    guard = PiiGuard(allow=["support@shop.example", "@help.shop.example"])
    assert guard.check("Write to support [at] shop [dot] example.").ok
    assert guard.check("Write to team(at)help(dot)shop(dot)example.").ok
    verdict = guard.check("Write to alice [at] example [dot] com.")
    assert "email address (a…@example.com)" in verdict.reason
    assert verdict.fixed == "Write to [EMAIL]."
