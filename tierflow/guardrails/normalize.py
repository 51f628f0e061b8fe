"""Text as the guards read it: Unicode NFKC, invisible characters removed.

An answer can hide a value from a pattern without changing what a reader sees: fullwidth
forms (a fullwidth dollar sign and digits, U+FF04 and U+FF10-FF19; a fullwidth at sign,
U+FF20), a no-break or thin space between digit groups, a zero-width space or soft
hyphen inside a card number. Every check of the facts and PII
guards runs on `normalize(text)` instead, so each pattern is written once, for ASCII.

- NFKC folds compatibility forms: fullwidth letters, digits and symbols to ASCII, the
  no-break, narrow no-break, thin and other spaces to a space, `ﬁ` to `fi`, `nº` to `no`.
- The default-ignorable code points (Unicode's Default_Ignorable_Code_Point: zero-width
  space and joiners, soft hyphen, word joiner, bidirectional controls, variation
  selectors, BOM, tag characters …) are removed: they render as nothing.

`normalized(text)` also maps each character of the result back to the span of `text` it
came from, for a guard that must edit the original (the PII guard masks it). For that
map NFKC is applied piece by piece — a character and whatever composes with it — which
gives the same text as NFKC of the whole (a property test holds it to that).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Unicode 15 DerivedCoreProperties.txt, Default_Ignorable_Code_Point.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
_IGNORABLE = "".join(f"{chr(low)}-{chr(high)}" for low, high in _IGNORABLE_RANGES)
_INVISIBLE = re.compile(f"[{_IGNORABLE}]")
_VISIBLE = re.compile(f"[^{_IGNORABLE}]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


_INVISIBLE_BMP = frozenset(
    chr(code) for low, high in _IGNORABLE_RANGES if high < 0x10000 for code in range(low, high + 1)
)


def is_invisible(char: str) -> bool:
    """A default-ignorable code point: it renders as nothing."""
    return char in _INVISIBLE_BMP or (char > "\uffff" and _INVISIBLE.match(char) is not None)


def _clean(text: str) -> bool:
    """Nothing to do: the text is NFKC already and has no invisible character."""
    return text.isascii() or (
        unicodedata.is_normalized("NFKC", text) and _INVISIBLE.search(text) is None
    )


def normalize(text: str) -> str:
    """NFKC, without invisible characters (see the module docstring)."""
    return text if _clean(text) else normalized(text).text


@dataclass(frozen=True)
class Normalized:
    """A normalised text and, for each of its characters, the span of the original it
    came from (`None`: the identity, nothing changed)."""

    original: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that `text[start:end]` came from (an empty
        span maps to an empty span at the same place)."""
        if self.starts is None or self.ends is None:
            return start, end
        size = len(self.text)
        if start >= size:
            return len(self.original), len(self.original)
        begin = self.starts[start]
        return (begin, begin) if end <= start else (begin, self.ends[min(end, size) - 1])


def normalized(text: str) -> Normalized:
    """`normalize(text)` with the map back to `text`."""
    if _clean(text):
        return Normalized(text, text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    index = 0
    size = len(text)
    while index < size:
        char = text[index]
        if char < "\x80":  # ASCII is NFKC already: copied, one character for one
            other = _NON_ASCII.search(text, index)
            end = other.start() if other is not None else size
            after = _next_visible(text, end)
            if after < size and _joins(text[end - 1], text[after]):
                end -= 1  # (its last character is the base of what follows)
            if end > index:
                out.append(text[index:end])
                starts += range(index, end)
                ends += range(index + 1, end + 1)
                index = end
                continue
        elif is_invisible(char):
            index += 1
            continue
        # A piece: a character and what composes with it (combining marks, a halfwidth
        # voiced mark, Hangul jamo), invisible characters between them dropped. (Nothing
        # composes with an ASCII character that follows.)
        piece = char
        end = index + 1
        while end < size and text[end] >= "\x80":
            after = _next_visible(text, end) if is_invisible(text[end]) else end
            if after == size or not _joins(piece, text[after]):
                break
            piece += text[after]
            end = after + 1
        piece = _nfkc(piece)
        out.append(piece)
        starts += [index] * len(piece)
        ends += [end] * len(piece)
        index = end
    return Normalized(text, "".join(out), tuple(starts), tuple(ends))


def _next_visible(text: str, index: int) -> int:
    match = _VISIBLE.search(text, index)
    return match.start() if match is not None else len(text)


@lru_cache(maxsize=4096)
def _joins(piece: str, char: str) -> bool:
    """Must `char` be normalised together with the piece before it? When it is, or
    becomes, a combining mark (which may compose with the piece, or reorder), or when
    NFKC changes the two together (Hangul jamo, two-part vowels)."""
    normal = unicodedata.normalize
    alone = normal("NFKC", char)
    if unicodedata.combining(char) or (alone and unicodedata.combining(alone[0])):
        return True
    return normal("NFKC", piece + char) != normal("NFKC", piece) + alone


@lru_cache(maxsize=4096)
def _nfkc(text: str) -> str:
    """NFKC without invisible characters."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
