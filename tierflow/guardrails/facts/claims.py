"""The claims an answer makes that can be checked without understanding it.

Only values with an unmistakable shape are claims: an id in one of the guard's id
shapes ("order 1042", "orders 1042 and 1007", "order no. 1,042", "Order-1042",
"ORD1042", "#1042"), a code (KT-ESP-01, DHL-558201), a tracking number after
"tracking", a money amount with its currency, a date, a duration (when asked for), a
count in front of an item name the sources know ("2 Ceramic Cup Sets").
Everything else — prose, numbers without a unit, relative dates ("in 3 days") — is not
a claim, so it can't be wrong. That is the guard's bias: a missed hallucination is
possible, a false alarm on an honest answer should not be.

The text is normalised first (`normalize`); a JSON answer is read field by field
(`answer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tierflow.guardrails.facts.values import (
    find_amounts,
    find_codes,
    find_dates,
    find_durations,
)

# A sentence ends at . ! ? and a space — not after an abbreviation a number follows.
_SENTENCE_END = re.compile(
    r"(?<![Nn][Oo]\.)(?<![Nn][Rr]\.)(?<![Nn]um\.)(?<![Rr]ef\.)(?<![Oo]rd\.)(?<!approx\.)"
    r"(?<=[.!?])\s+(?=\S)|\n+"
)
_TRACKING = re.compile(
    r"(?i:tracking)(?:\s+(?i:number|no\.?|code|id|#))?(?:\s+(?i:is|was))?\s*:?\s*"
    r"(?P<value>[A-Z0-9][A-Z0-9-]{5,})(?![\w-])"
)
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip

# ---------------------------------------------------------------- id shapes

# An id: 3+ digits, or digits in thousands ("1,042").
ID_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d{3,})(?![\d])"
_ID_VALUE = re.compile(ID_NUMBER)
_ID_LIST = rf"{ID_NUMBER}(?:\s*(?:,\s*(?:and|or)\b|,|and|or|&|/)\s*#?{ID_NUMBER})*"


def id_word_pattern(word: str) -> str:
    """The shapes of an id after `word`: "order 1042", "orders 1042, 1043 and 1007",
    "order no. 1042", "order number: 1042", "Order-1042", "order #1042", "order (1042)",
    "order 1,042" (case-insensitive)."""
    name = r"[\s-]+".join(re.escape(part) for part in word.split())
    label = r"(?:number|num|nr|no|id|ref)\b\.?|n°"
    return rf"\b(?i:{name})s?(?:[\s-]*(?i:{label}))?[\s:#(-]*(?P<id>{_ID_LIST})"


HASH_ID = rf"(?<![\w#&])#(?P<id>{ID_NUMBER})"
ORDER_CODE_ID = r"(?<![\w-])(?i:ord)[-#.]?\s?(?P<id>\d{3,})(?![\w-])"


def default_id_patterns(words: Iterable[str]) -> tuple[str, ...]:
    """The id shapes for `words`: each word's shapes (`id_word_pattern`), `#1042`, and
    for "order" also `ORD1042` / `ORD-1042`."""
    words = [w for w in words if w.strip()]
    patterns = [id_word_pattern(word) for word in words] + [HASH_ID]
    if any(w.strip().lower() == "order" for w in words):
        patterns.append(ORDER_CODE_ID)
    return tuple(patterns)


def compile_id_patterns(patterns: Iterable[str | re.Pattern[str]]) -> tuple[re.Pattern[str], ...]:
    """Compiled id shapes; an `id` group marks the id (else the whole match), and every
    number of 3+ digits in it is one."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern) if isinstance(pattern, str) else pattern)
        except re.error as error:
            message = f"id pattern {pattern!r} is not a regular expression: {error}"
            raise ValueError(message) from None
    return tuple(compiled)


def find_ids(text: str, patterns: Sequence[re.Pattern[str]]) -> list[tuple[str, int, int]]:
    """Every id the shapes find: (digits without separators, start, end of the match)."""
    found: list[tuple[str, int, int]] = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            group = "id" if "id" in pattern.groupindex and match["id"] is not None else 0
            for number in _ID_VALUE.finditer(match[group]):
                found.append((number.group().replace(",", ""), match.start(), match.end()))
    return found


@dataclass(frozen=True)
class Claim:
    """One checkable statement: its kind, the text as written, its normalised value,
    where it is (segment and offset; the field of a JSON answer), and the ids of what it
    is about."""

    kind: str  # id, code, amount, date, duration, quantity
    text: str
    value: Any
    segment: int
    start: int
    context_ids: tuple[str, ...] = ()
    field: str = ""


@dataclass(frozen=True)
class Segment:
    """A sentence of the answer (of one field, for a JSON answer): the ids it names and
    where, the field, and the ids of the JSON records around it."""

    text: str
    ids: tuple[str, ...]
    id_spans: tuple[tuple[int, int], ...] = ()
    field: str = ""
    owners: tuple[str, ...] = ()

    @property
    def about(self) -> tuple[str, ...]:
        return self.ids or self.owners


@lru_cache(maxsize=64)
def _quantity_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    if not names:
        return None
    alternatives = "|".join(
        r"\s+".join(re.escape(word) for word in name.split())
        for name in sorted(names, key=len, reverse=True)
    )
    count = r"\d{1,4}|" + "|".join(_NUMBER_WORDS)
    return re.compile(
        rf"(?<![\w.,$€£])(?P<n1>{count})\s*(?:x|×)?\s*(?:of\s+(?:the|your)\s+)?"
        rf"(?P<name1>{alternatives})(?:e?s)?\b"
        rf"|(?P<name2>{alternatives})(?:e?s)?\s*\(?\s*(?:x|×)\s*(?P<n2>\d{{1,4}})\b",
        re.IGNORECASE,
    )


def split_sentences(
    texts: Sequence[tuple[str, str]],
    id_patterns: Sequence[re.Pattern[str]],
    owners: dict[str, tuple[str, ...]] | None = None,
) -> list[Segment]:
    """The sentences of (field, text) pairs, with the ids each names."""
    segments: list[Segment] = []
    for field, text in texts:
        for sentence in _SENTENCE_END.split(text):
            if sentence.strip():
                found = find_ids(sentence, id_patterns)
                ids = tuple(dict.fromkeys(value for value, _, _ in found))
                spans = tuple(sorted({(start, end) for _, start, end in found}))
                about = (owners or {}).get(field, ())
                segments.append(Segment(sentence, ids, spans, field, about))
    return segments


def extract_claims(
    segments: Sequence[Segment],
    kinds: frozenset[str],
    item_names: Sequence[str],
) -> Iterator[Claim]:
    """Every claim of the asked-for kinds, in the order the answer makes them."""
    quantity_pattern = _quantity_pattern(tuple(sorted(set(item_names))))
    for index, segment in enumerate(segments):
        for kind, shown, value, start in _found(segment, kinds, quantity_pattern):
            yield Claim(kind, shown, value, index, start, segment.about, segment.field)


def _found(
    segment: Segment, kinds: frozenset[str], quantity_pattern: re.Pattern[str] | None
) -> Iterator[tuple[str, str, Any, int]]:
    """(kind, text as written, value, offset) of each claim of one sentence."""
    text = segment.text
    if "ids" in kinds:
        for value in segment.ids:
            yield "id", value, value, text.find(value)
    tracked: set[str] = set()
    if "codes" in kinds:
        for match in _TRACKING.finditer(text):
            tracked.add(match["value"])
            yield "code", match["value"], match["value"], match.start()
        for code, start, end in find_codes(text):
            in_id = any(s < end and start < e for s, e in segment.id_spans)
            if code not in tracked and not in_id:  # ORD-1042 is an id, not a code
                yield "code", code, code, start
    if "amounts" in kinds:
        for amount, start, end in find_amounts(text):
            yield "amount", text[start:end], amount, start
    if "dates" in kinds:
        for days, start, end in find_dates(text):
            yield "date", text[start:end], days, start
    if "durations" in kinds:
        for duration, start, end in find_durations(text):
            yield "duration", text[start:end], duration, start
    if "quantities" in kinds and quantity_pattern is not None:
        for match in quantity_pattern.finditer(text):
            count = (match["n1"] or match["n2"]).lower()
            number = _NUMBER_WORDS.get(count) or int(count)
            item = " ".join((match["name1"] or match["name2"]).split()).lower()
            yield "quantity", match[0], (item, number), match.start()
