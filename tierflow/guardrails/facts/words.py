"""English number words: "three hundred and fifty-nine" → 359.

`find_numbers` finds each run of number words (units, tens, "hundred", "thousand",
"million", "billion", joined by spaces, hyphens or "and"; "a hundred" is 100) and reads
it. A run that is not a number a person would write ("one two", "nine twenty",
"thousand million") is read by its longest well-formed tail — in "page one two hundred
dollars" the number is "two hundred" — and has no value if no tail is well formed
("hundred"). Each run is scanned once, whatever follows it, so the cost is linear in the
text; a caller checks what follows (a currency, a unit) itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_VOCABULARY = sorted([*_UNITS, *_TENS, "hundred", *_SCALES], key=len, reverse=True)
# The longest number read: "nine hundred ninety-nine billion … ninety-nine" is 20 words.
_MAX_WORDS = 24

_WORD = rf"(?:{'|'.join(_VOCABULARY)}|a(?=\s+(?:hundred|thousand|million|billion)\b))\b"
_JOIN = r"(?:\s+and\s+|\s*-\s*|\s+)"
# A run of number words, for use inside a pattern anchored where the run must start.
WORDS = rf"(?i:\b{_WORD}(?:{_JOIN}{_WORD}){{0,{_MAX_WORDS - 1}}})"
_RUN = re.compile(rf"\b{_WORD}(?:{_JOIN}{_WORD})*+", re.IGNORECASE)
_TOKEN = re.compile(_WORD, re.IGNORECASE)


def find_numbers(text: str) -> Iterator[tuple[int, int, int]]:
    """(value, start, end) of each run of number words that says a number."""
    for run in _RUN.finditer(text):
        found = _read(run.group())
        if found is not None:
            value, offset = found
            yield value, run.start() + offset, run.end()


def words_value(text: str) -> int | None:
    """The number a run of number words says, or None (see the module docstring)."""
    found = _read(text)
    return found[0] if found is not None else None


def _read(run: str) -> tuple[int, int] | None:
    """The value of a run's longest well-formed tail, and where that tail starts."""
    tokens = list(_TOKEN.finditer(run))[-_MAX_WORDS:]
    words = [token.group().lower() for token in tokens]
    for first in range(len(words)):
        value = _value(words[first:])
        if value is not None:
            return value, tokens[first].start()
    return None


def _value(tokens: list[str]) -> int | None:
    """Strict reading: units after tens only below ten, "hundred" after 1-99, scales in
    decreasing order, each after a non-zero group."""
    total = 0
    group = 0  # the part below the last scale
    last = ""  # the previous token's kind
    last_scale = 10**12
    for token in tokens:
        if token in _UNITS or token == "a":
            unit = _UNITS.get(token, 1)
            if last in ("unit", "teen") or (last == "tens" and not 0 < unit < 10):
                return None
            if token == "zero" and len(tokens) > 1:
                return None
            group += unit
            last = "unit" if unit < 10 else "teen"
        elif token in _TENS:
            if last in ("unit", "teen", "tens"):
                return None
            group += _TENS[token]
            last = "tens"
        elif token == "hundred":
            if not 0 < group < 100 or last in ("hundred", ""):
                return None
            group *= 100
            last = "hundred"
        else:
            scale = _SCALES[token]
            if group == 0 or scale >= last_scale:
                return None
            total += group * scale
            group = 0
            last_scale = scale
            last = "scale"
    return total + group if last else None
