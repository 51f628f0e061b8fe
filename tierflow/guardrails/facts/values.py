"""The checkable values of the facts guard — amounts, dates, durations, identifiers — found
in text and normalised, so that "$1,234.50", "1234.5 USD", "1.234,50 $", "one thousand
two hundred thirty-four dollars and fifty cents" and a JSON 1234.5 compare equal.
The text given is normalised already (`normalize`): fullwidth digits and symbols are
ASCII by then, and a zero-width space is gone.

The same finders read the answer (claims) and the sources, so a value is recognised the
same way on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tierflow.guardrails.facts.words import WORDS, find_numbers, words_value

CENT = Decimal("0.01")

# ---------------------------------------------------------------- amounts


@dataclass(frozen=True)
class Amount:
    value: Decimal  # to the cent
    currency: str | None  # USD, EUR, GBP; None when the source doesn't say

    def __str__(self) -> str:
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency or "", "")
        text = f"{self.value:,.2f}"
        return f"{symbol}{text}" if symbol else f"{text} {self.currency or ''}".strip()

    def matches(self, other: Amount) -> bool:
        same_currency = self.currency is None or other.currency is None
        return self.value == other.value and (same_currency or self.currency == other.currency)


_CURRENCY = {
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "buck": "USD", "bucks": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "sterling": "GBP",
}  # fmt: skip
_UNIT = {"dollar": "dollar", "dollars": "dollar", "buck": "dollar", "bucks": "dollar",
         "euro": "euro", "euros": "euro", "cent": "cent", "cents": "cent", "¢": "cent"}  # fmt: skip
_SCALE = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "mn": 1_000_000,
          "million": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}  # fmt: skip
# 1,234.50 | 1.234,50 | 1 234,50 and 1'234.50 | 1234.5 and 349,00 (decimal comma).
_NUMBER = (
    r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?"
    r"|\d{1,3}(?:[ ']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
)
_NUMBER_END = r"(?!\d|[.,']\d)"
_SCALE_WORD = r"(?:\s?(?P<{0}>thousand|million|billion)\b|(?P<{0}x>[kKM]|mn|bn)\b)?"
_CODE = r"(?i:usd|eur|gbp)(?![A-Za-z])"
# A currency word after a number ("pounds" alone is not one: as often a weight).
_CURRENCY_WORD = r"(?i:(?:US\s+)?dollars?|bucks?|euros?|pounds\s+sterling|cents?)\b"
_AMOUNT = re.compile(
    rf"(?<![\w.,])(?P<pre>US\$|\$|€|£|{_CODE}\s?:?)\s?(?P<n1>{_NUMBER}){_NUMBER_END}"
    + _SCALE_WORD.format("s1")
    + rf"|(?<![\w.,$€£])(?P<n2>{_NUMBER}){_NUMBER_END}"
    + _SCALE_WORD.format("s2")
    + rf"\s?(?P<post>(?:US\s?)?\$(?!\s?\d)|[€£](?!\s?\d)|\(?\s?{_CODE}\s?\)?|{_CURRENCY_WORD}|¢)"
)
_AFTER_WORDS = re.compile(rf"\s+(?P<post>{_CURRENCY_WORD})")
# "… dollars and fifty cents", "… euros 20 cents"
_CENTS = re.compile(rf"\s*,?\s*(?:(?i:and)\s+)?(?P<c>\d{{1,2}}|{WORDS})\s+(?i:cents?)\b")


def to_cents(number: str) -> Decimal | None:
    """'1,234.5' → 1234.50; '349,00' (decimal comma) → 349.00; '1.234,50' → 1234.50."""
    text = number.strip()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", text):
        text = text.replace(",", "")
    elif re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?", text):
        text = text.replace(".", "").replace(",", ".")
    else:
        text = re.sub(r"[ ']", "", text).replace(",", ".")
    try:
        return Decimal(text).quantize(CENT)
    except InvalidOperation:
        return None


def cents_of(number: float) -> Decimal | None:
    """A JSON number to the cent; None for inf, nan or one too large to quantize."""
    try:
        return Decimal(str(number)).quantize(CENT)
    except InvalidOperation:
        return None


def find_amounts(text: str) -> Iterator[tuple[Amount, int, int]]:
    """Every money amount written with a currency — a symbol, a code or a word, before or
    after the number, in digits or English number words — and its span."""
    found = sorted([*_in_digits(text), *_in_words(text)], key=lambda f: (f[2], -f[3]))
    consumed = 0  # the end of the last amount, with its "and 50 cents" tail
    for number, marker, start, end in found:
        if start < consumed:
            continue
        currency, unit = _marker(marker)
        value, stop = number, end
        if unit == "cent":
            value, currency = (number / 100).quantize(CENT), None
        tail = _CENTS.match(text, end) if unit in ("dollar", "euro") else None
        if tail is not None:
            cents = int(tail["c"]) if tail["c"].isdigit() else words_value(tail["c"])
            if cents is not None and cents < 100:
                value, stop = number + Decimal(cents) / 100, tail.end()
        consumed = stop
        yield Amount(value, currency), start, stop


def _in_digits(text: str) -> Iterator[tuple[Decimal, str, int, int]]:
    """(number, currency marker, start, end) of the amounts written in digits."""
    for match in _AMOUNT.finditer(text):
        number = to_cents(match["n1"] or match["n2"])
        scale = next((match[g] for g in ("s1", "s1x", "s2", "s2x") if match[g]), None)
        if number is not None and scale is not None:
            number = (number * _SCALE[scale.lower()]).quantize(CENT)
        if number is not None:
            yield number, match["pre"] or match["post"], match.start(), match.end()


def _in_words(text: str) -> Iterator[tuple[Decimal, str, int, int]]:
    """(number, currency word, start, end) of the amounts written in words."""
    for value, start, end in find_numbers(text):
        after = _AFTER_WORDS.match(text, end)
        if after is not None:
            yield Decimal(value).quantize(CENT), after["post"], start, after.end()


def _marker(marker: str) -> tuple[str | None, str]:
    """The currency and the unit word ("dollar", "euro", "cent" or "") of a marker: "$",
    "US$", "(USD)", "USD:", "US dollars", "bucks", "pounds sterling", "¢" …"""
    words = [w for w in re.findall(r"[a-z]+|[$€£¢]", marker.lower()) if w != "us"]
    last = words[-1] if words else ""
    return _CURRENCY.get(last), _UNIT.get(last, "")


# ---------------------------------------------------------------- dates

DateValue = tuple[int | None, int, int]  # (year or None when not written, month, day)

_MONTHS = {
    name: index
    for index, names in enumerate(
        (
            ("January", "Jan"), ("February", "Feb"), ("March", "Mar"), ("April", "Apr"),
            ("May",), ("June", "Jun"), ("July", "Jul"), ("August", "Aug"),
            ("September", "Sep", "Sept"), ("October", "Oct"), ("November", "Nov"),
            ("December", "Dec"),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip
# Month names only capitalised: "may" is a verb far more often than a month.
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(?P<{0}>[0-3]?\d)(?:st|nd|rd|th)?"
_DATES = re.compile(
    r"(?<!\d)(?P<iy>\d{4})-(?P<im>[01]\d)-(?P<id>[0-3]\d)(?!\d)"
    rf"|\b(?P<m1>{_MONTH})\.?\s+{_DAY.format('d1')}(?:,?\s+(?P<y1>\d{{4}}))?(?!\d)"
    rf"|(?<!\d){_DAY.format('d2')}\s+(?P<m2>{_MONTH})\.?(?:,?\s+(?P<y2>\d{{4}}))?(?![\d\w])"
    r"|(?<![\d/.])(?P<a>[0-3]?\d)[/.](?P<b>[0-3]?\d)[/.](?P<ny>\d{4})(?![\d/.])"
)


def _valid(year: int | None, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31 and (year is None or 1900 <= year <= 2200)


def find_dates(text: str) -> Iterator[tuple[frozenset[DateValue], int, int]]:
    """Every date, as the set of days it can mean (11/05/2026 is 5 November or 11 May),
    and its span."""
    for match in _DATES.finditer(text):
        found: set[DateValue] = set()
        if match.group("iy"):
            found.add((int(match["iy"]), int(match["im"]), int(match["id"])))
        elif match.group("m1") or match.group("m2"):
            month = _MONTHS[match.group("m1") or match.group("m2")]
            day = int(match.group("d1") or match.group("d2"))
            year_text = match.group("y1") or match.group("y2")
            found.add((int(year_text) if year_text else None, month, day))
        else:
            a, b, year = int(match["a"]), int(match["b"]), int(match["ny"])
            found |= {(year, a, b), (year, b, a)}  # US month/day, or day/month
        found = {d for d in found if _valid(*d)}
        if found:
            yield frozenset(found), match.start(), match.end()


def same_day(claim: DateValue, source: DateValue) -> bool:
    return claim[1:] == source[1:] and (claim[0] is None or claim[0] == source[0])


def show_date(value: DateValue) -> str:
    year, month, day = value
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"{month:02d}-{day:02d}"


# ---------------------------------------------------------------- durations

Duration = tuple[int, int, str]  # (low, high, unit): "1-2 business days" → (1, 2, "day")
_DURATION_UNIT = (
    r"[\s-]*(?:(?:business|working|calendar|extra|more|additional)\s+)?"
    r"(?P<unit>minute|hour|day|week|month|year)s?\b"
)

_DURATION = re.compile(
    r"(?<![\w.])(?P<lo>\d+)(?:\s*(?:-|–|to)\s*(?P<hi>\d+))?" + _DURATION_UNIT,
    re.IGNORECASE,
)
_DURATION_AFTER_WORDS = re.compile(
    rf"(?:\s*(?:-|–|to)\s*(?P<hi>\d+|{WORDS}))?" + _DURATION_UNIT, re.IGNORECASE
)


def find_durations(text: str) -> Iterator[tuple[Duration, int, int]]:
    """Every duration, in digits or words ("5 business days", "thirty days", "1-2 weeks",
    "one to two weeks")."""
    found: list[tuple[Duration, int, int]] = []
    for match in _DURATION.finditer(text):
        low = int(match["lo"])
        high = int(match["hi"]) if match["hi"] else low
        found.append(((low, high, match["unit"].lower()), match.start(), match.end()))
    for low, start, end in find_numbers(text):
        after = _DURATION_AFTER_WORDS.match(text, end)
        if after is not None:
            hi = after["hi"]
            top = (int(hi) if hi.isdigit() else words_value(hi)) if hi else low
            if top is not None:
                found.append(((low, top, after["unit"].lower()), start, after.end()))
    consumed = 0
    for duration, start, end in sorted(found, key=lambda f: (f[1], -f[2])):
        if start >= consumed:
            consumed = end
            yield duration, start, end


def show_duration(value: Duration) -> str:
    low, high, unit = value
    count = f"{low}" if low == high else f"{low}-{high}"
    return f"{count} {unit}{'' if high == 1 else 's'}"


# ---------------------------------------------------------------- identifiers

# Product codes, SKUs, tracking numbers: upper-case letters and digits joined by hyphens,
# with at least one letter and one digit (KT-ESP-01, DHL-558201, 1Z-4471-0932; not
# USB-C, not 2026-11-20).
CODE = re.compile(
    r"(?<![\w-])(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{1,12}(?:-[A-Z0-9]{1,12}){1,4}(?![\w-])"
)
DIGITS = re.compile(r"(?<![\d.,])\d{3,}(?![\d]|[.,]\d)")


def find_codes(text: str) -> Iterator[tuple[str, int, int]]:
    for match in CODE.finditer(text):
        yield match.group(), match.start(), match.end()
