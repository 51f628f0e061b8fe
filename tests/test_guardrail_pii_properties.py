"""Properties of the PII guard over surface variants, and of the normalisation both
guards share: for any valid card number and any mix of separators the card is found;
the same for IBANs, SSNs and obfuscated emails; the masked text is clean; normalising is
NFKC without invisible characters, and its map back to the original is exact."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from tierflow.guardrails import PiiGuard
from tierflow.guardrails.normalize import is_invisible, normalize, normalized
from tierflow.guardrails.pii.detectors import luhn_valid

DETERMINISTIC = settings(max_examples=200, deadline=None, derandomize=True, database=None)
GUARD = PiiGuard()

# Between two groups of digits: nothing, a space, dot or hyphen, a spaced hyphen, or a
# character NFKC or the invisible-character removal turns into one of those.
SEPARATORS = ["", " ", ".", "-", " - ", "\u200b", "\u00a0", "\u2009", "\u202f", "\u00ad", "\u2060"]
# Card networks: (prefixes, length, printed grouping).
NETWORKS = [
    (["4"], 16, (4, 4, 4, 4)),
    (["51", "52", "53", "54", "55", "2221", "2720"], 16, (4, 4, 4, 4)),
    (["34", "37"], 15, (4, 6, 5)),
    (["36", "38"], 14, (4, 6, 4)),
    (["6011", "65"], 16, (4, 4, 4, 4)),
    (["4"], 19, (4, 4, 4, 4, 3)),
    (["4"], 13, (13,)),
]


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, as written) for a valid card number of a known network."""
    prefixes, length, grouping = draw(st.sampled_from(NETWORKS))
    prefix = draw(st.sampled_from(prefixes))
    body = prefix + draw(st.text("0123456789", min_size=length - len(prefix) - 1,
                                 max_size=length - len(prefix) - 1))  # fmt: skip
    digits = _luhn_complete(body)
    groups, position = [], 0
    for size in grouping:
        groups.append(digits[position : position + size])
        position += size
    written = groups[0]
    for group in groups[1:]:
        written += draw(st.sampled_from(SEPARATORS)) + group
    return digits, written


@settings(DETERMINISTIC)
@given(card=cards(), before=st.sampled_from(["Card ", "paid with ", "(", "card: "]))
def test_any_valid_card_with_any_separators_is_found(card: tuple[str, str], before: str) -> None:
    digits, written = card
    verdict = GUARD.check(f"{before}{written} was charged.")
    assert not verdict.ok
    assert f"card number (ending {digits[-4:]})" in verdict.reason
    assert verdict.fixed == f"{before}[CARD] was charged."


def _iban(country: str, bban: str) -> str:
    number = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(number) % 97:02d}{bban}"


@st.composite
def ibans(draw: st.DrawFn) -> tuple[str, str]:
    """(IBAN, as written in groups of four with any separators)."""
    shapes = [
        ("DE", "d" * 18),
        ("FR", "d" * 23),
        ("GB", "LLLL" + "d" * 14),
        ("NL", "LLLL" + "d" * 10),
    ]
    country, shape = draw(st.sampled_from(shapes))
    bban = "".join(
        draw(st.sampled_from("0123456789" if kind == "d" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        for kind in shape
    )
    iban = _iban(country, bban)
    separators = [s for s in SEPARATORS if s != " - "]
    written = iban[:4]
    for start in range(4, len(iban), 4):
        written += draw(st.sampled_from(separators)) + iban[start : start + 4]
    return iban, written


@settings(DETERMINISTIC)
@given(iban=ibans())
def test_any_valid_iban_with_any_separators_is_found(iban: tuple[str, str]) -> None:
    value, written = iban
    verdict = GUARD.check(f"IBAN {written}, thanks")
    assert not verdict.ok
    assert f"IBAN (ending {value[-4:]})" in verdict.reason
    assert verdict.fixed == "IBAN [IBAN], thanks"


@settings(DETERMINISTIC)
@given(
    area=st.integers(1, 899).filter(lambda n: n != 666),
    group=st.integers(1, 99),
    serial=st.integers(1, 9999),
    separator=st.sampled_from(["-", " ", ".", "\u00a0", "\uff0d"]),
)
def test_any_ssn_with_one_kind_of_separator_is_found(
    area: int, group: int, serial: int, separator: str
) -> None:
    ssn = f"{area:03d}{separator}{group:02d}{separator}{serial:04d}"
    verdict = GUARD.check(f"My number is {ssn}.")
    assert not verdict.ok
    assert "US social security number" in verdict.reason
    assert verdict.fixed == "My number is [NATIONAL ID]."
    assert not GUARD.check(f"SSN: {area:03d}{group:02d}{serial:04d}").ok


LABEL = st.from_regex(r"[a-z][a-z0-9]{1,9}", fullmatch=True).filter(
    lambda label: label not in ("at", "dot")
)
AT_SIGNS = ["@", " @ ", "＠", "[at]", " [at] ", "(at)", " (at) ", "{at}", " <at> ", "[@]"]
HIDDEN_DOTS = [" [dot] ", "[dot]", "(dot)", " (dot) ", " dot ", " DOT ", "{dot}"]


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    """(address, as written with an at sign and dots in any of the obfuscated styles)."""
    local = draw(st.from_regex(r"[a-z][a-z0-9_]{0,9}(\.[a-z0-9]{1,5})?", fullmatch=True))
    labels = draw(st.lists(LABEL, min_size=1, max_size=3))
    tld = draw(
        st.from_regex(r"[a-z]{2,6}", fullmatch=True).filter(lambda t: t not in {"at", "dot"})
    )
    parts = [*labels, tld]
    word_at = draw(st.booleans())
    at = draw(st.sampled_from([" at ", " AT "] if word_at else AT_SIGNS))
    dots = [draw(st.sampled_from([".", "．", *HIDDEN_DOTS])) for _ in parts[1:]]
    if word_at and all(d in (".", "．") for d in dots):
        dots[-1] = draw(st.sampled_from(HIDDEN_DOTS))  # a bare " at " needs a hidden dot
    written = local + at + parts[0] + "".join(d + p for d, p in zip(dots, parts[1:], strict=True))
    return f"{local}@{'.'.join(parts)}", written


@settings(DETERMINISTIC)
@given(email=emails())
def test_any_obfuscated_email_is_found(email: tuple[str, str]) -> None:
    address, written = email
    verdict = GUARD.check(f"Write to {written} today.")
    assert not verdict.ok, written
    local, _, domain = address.partition("@")
    assert f"email address ({local[0]}…@{domain})" in verdict.reason
    assert verdict.fixed == "Write to [EMAIL] today."
    assert PiiGuard(allow=[address]).check(f"Write to {written} today.").ok


# Text with what normalisation acts on: fullwidth forms, invisible characters, combining
# marks, compatibility characters, halfwidth katakana, Hangul jamo.
UNICODE_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            ["a", "e", "1", " ", "$", "@", ".", "-", "＄", "３", "＠", "\u200b", "\u00ad",
             "\u00a0", "\u0301", "\u0308", "ﬁ", "º", "½", "ｶ", "ﾞ", "\u1100", "\u1161",
             "\u11a8", "\ufeff", "\U000e0041", "é", "Å", "\u212b", "①"]
        ),
        max_size=40,
    ).map("".join),
)  # fmt: skip


def _reference(text: str) -> str:
    strip = "".join(c for c in text if not is_invisible(c))
    return "".join(c for c in unicodedata.normalize("NFKC", strip) if not is_invisible(c))


@settings(DETERMINISTIC)
@given(text=UNICODE_TEXT)
def test_normalize_is_nfkc_without_invisible_characters(text: str) -> None:
    result = normalized(text)
    assert result.text == normalize(text) == _reference(text)
    assert normalize(result.text) == result.text


@settings(DETERMINISTIC)
@given(text=UNICODE_TEXT, data=st.data())
def test_normalized_spans_map_back_to_the_original(text: str, data: st.DataObject) -> None:
    result = normalized(text)
    size = len(result.text)
    start = data.draw(st.integers(0, size))
    end = data.draw(st.integers(start, size))
    begin, stop = result.span(start, end)
    assert 0 <= begin <= stop <= len(text)
    if end > start:  # the original span normalises to (at least) the normalised span
        assert result.text[start:end] in normalize(text[begin:stop])


def test_normalize_examples() -> None:
    assert normalize("＄３５９ ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ") == "$359 john@gmail.com"
    assert normalize("4111\u200b1111\u00a01111\u00ad1111") == "41111111 11111111"
    assert normalize("order nº 1042") == "order no 1042"
    text = "Card ４１１１\u200b１１１１ １１１１ １１１１, thanks"
    result = normalized(text)
    start = result.text.index("4111")
    begin, end = result.span(start, start + len("41111111 1111 1111"))
    assert text[begin:end] == "４１１１\u200b１１１１ １１１１ １１１１"
    assert re.fullmatch(r"[\x00-\x7f]*", normalize("plain ascii")) is not None


EVASIVE = st.lists(
    st.sampled_from(
        ["john", "j.doe", " [at] ", "(at)", " at ", " AT ", "@", "＠", " dot ", "[dot]", "(dot)",
         ".", "．", "gmail", "example", "com", "4111", "1111", "3782", "822463", "10005", " ",
         "-", " - ", "\u200b", "\u00ad", "\u00a0", "DE89", "3704", "0044", "0532", "0130", "00",
         "SSN", "123", "45", "6789", "＋３３", "６", "[EMAIL]", "[CARD]", "[IBAN]", "guaranteed",
         "ｇｕａｒａｎｔｅｅｄ", "\u0301", "é"]
    ),
    max_size=50,
).map("".join)  # fmt: skip


@settings(DETERMINISTIC)
@given(text=EVASIVE)
def test_any_evasive_text_gets_a_verdict_and_a_clean_fix(text: str) -> None:
    guard = PiiGuard(banned_phrases=["guaranteed"], max_chars=300)
    verdict = guard.check(text)
    assert verdict.ok or verdict.reason
    if verdict.fixed is not None:
        again = guard.check(verdict.fixed)
        assert again.ok, (verdict.fixed, again.reason)
