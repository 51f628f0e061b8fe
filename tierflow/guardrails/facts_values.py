"""The checkable values of the facts guard — amounts, dates, durations, identifiers — found
in text and normalised, so that "$1,234.50", "1234.5 USD" and a JSON 1234.5 compare equal.

The same finders read the answer (claims) and the sources, so a value is recognised the
same way on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

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
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP",
}  # fmt: skip
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?<![\w.,])(?P<pre>US\$|\$|€|£|(?:USD|EUR|GBP)\s?)\s?(?P<n1>{_NUMBER})(?![\d,]*\d)"
    # (not "pounds": as often a weight as a currency)
    rf"|(?<![\w.,$€£])(?P<n2>{_NUMBER})\s?(?P<post>USD|EUR|GBP|€|dollars?\b|euros?\b)"
)


def to_cents(number: str) -> Decimal | None:
    """'1,234.5' → 1234.50; '349,00' (decimal comma) → 349.00."""
    text = number.strip()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", text):
        text = text.replace(",", "")
    elif re.fullmatch(r"\d+,\d{1,2}", text):
        text = text.replace(",", ".")
    try:
        return Decimal(text).quantize(CENT)
    except InvalidOperation:
        return None


def find_amounts(text: str) -> Iterator[tuple[Amount, int, int]]:
    """Every money amount written with a currency, and its span."""
    for match in _AMOUNT.finditer(text):
        number = match.group("n1") or match.group("n2")
        marker = (match.group("pre") or match.group("post") or "").strip().lower()
        value = to_cents(number)
        if value is not None:
            yield Amount(value, _CURRENCY.get(marker)), match.start(), match.end()


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

_DURATION = re.compile(
    r"(?<![\w.])(?P<lo>\d+)(?:\s*(?:-|–|to)\s*(?P<hi>\d+))?[\s-]*"
    r"(?:(?:business|working|calendar|extra|more|additional)\s+)?"
    r"(?P<unit>minute|hour|day|week|month|year)s?\b",
    re.IGNORECASE,
)


def find_durations(text: str) -> Iterator[tuple[Duration, int, int]]:
    for match in _DURATION.finditer(text):
        low = int(match["lo"])
        high = int(match["hi"]) if match["hi"] else low
        yield (low, high, match["unit"].lower()), match.start(), match.end()


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
