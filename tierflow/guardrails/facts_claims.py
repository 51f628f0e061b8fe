"""The claims an answer makes that can be checked without understanding it.

Only values with an unmistakable shape are claims: an id after a declared word ("order
1042", "orders 1042 and 1007", "#1042"), a code (KT-ESP-01, DHL-558201), a tracking
number after "tracking", a money amount with its currency, a date, a duration (when
asked for), a count in front of an item name the sources know ("2 Ceramic Cup Sets").
Everything else — prose, numbers without a unit, relative dates ("in 3 days") — is not
a claim, so it can't be wrong. That is the guard's bias: a missed hallucination is
possible, a false alarm on an honest answer should not be.

An answer that is a JSON object is read field by field: its string values as text, and
integers under `*_id`/`*_ids` keys as ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tierflow.guardrails.facts_values import (
    find_amounts,
    find_codes,
    find_dates,
    find_durations,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_ID_KEY = re.compile(r"(?:^|_)ids?$")
_TRACKING = re.compile(
    r"(?i:tracking)(?:\s+(?i:number|no\.?|code|id|#))?(?:\s+(?i:is|was))?\s*:?\s*"
    r"(?P<value>[A-Z0-9][A-Z0-9-]{5,})(?![\w-])"
)
_HASH_ID = re.compile(r"(?<![\w#&])#(?P<value>\d{3,})\b")
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One checkable statement: its kind, the text as written, its normalised value,
    where it is (segment and offset), and the ids named in its sentence."""

    kind: str  # id, code, amount, date, duration, quantity
    text: str
    value: Any
    segment: int
    start: int
    context_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Segment:
    """A sentence of the answer (of one field, for a JSON answer)."""

    text: str
    ids: tuple[str, ...]


def segments_of(candidate: str) -> tuple[list[str], list[str]]:
    """The answer's texts (one per JSON string field, or the whole text) and the ids a
    JSON answer declares in `*_id(s)` fields."""
    stripped = candidate.strip()
    if stripped[:1] == "{":
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            return [candidate], []
        texts: list[str] = []
        ids: list[str] = []
        _walk(value, "", texts, ids, depth=0)
        return texts, ids
    return [candidate], []


def _walk(value: Any, key: str, texts: list[str], ids: list[str], depth: int) -> None:
    if depth > 50:
        return
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, Mapping):
        for child_key, child in value.items():
            _walk(child, str(child_key).lower(), texts, ids, depth + 1)
    elif isinstance(value, list):
        for child in value:
            _walk(child, key, texts, ids, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and _ID_KEY.search(key):
        ids.append(str(value))


@lru_cache(maxsize=32)
def _id_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(w) for w in words)
    return re.compile(
        rf"\b(?i:{names})s?(?:\s+(?i:number|no\.?|id))?\s*#?\s*\d{{3,}}"
        r"(?:\s*(?:,|and|or|&)\s*#?\d{3,})*"
    )


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


def split_sentences(texts: Sequence[str], id_words: tuple[str, ...]) -> list[Segment]:
    segments: list[Segment] = []
    pattern = _id_pattern(id_words)
    for text in texts:
        for sentence in _SENTENCE_END.split(text):
            if sentence.strip():
                ids = [v for m in pattern.finditer(sentence) for v in re.findall(r"\d{3,}", m[0])]
                ids += [m["value"] for m in _HASH_ID.finditer(sentence)]
                segments.append(Segment(sentence, tuple(dict.fromkeys(ids))))
    return segments


def extract_claims(
    segments: Sequence[Segment],
    kinds: frozenset[str],
    item_names: Sequence[str],
) -> Iterator[Claim]:
    """Every claim of the asked-for kinds, in the order the answer makes them."""
    quantity_pattern = _quantity_pattern(tuple(sorted(set(item_names))))
    for index, segment in enumerate(segments):
        text, context = segment.text, segment.ids
        if "ids" in kinds:
            for value in segment.ids:
                yield Claim("id", value, value, index, text.find(value), context)
        tracked: set[str] = set()
        if "codes" in kinds:
            for match in _TRACKING.finditer(text):
                tracked.add(match["value"])
                yield Claim("code", match["value"], match["value"], index, match.start(), context)
            for code, start, _ in find_codes(text):
                if code not in tracked:
                    yield Claim("code", code, code, index, start, context)
        if "amounts" in kinds:
            for amount, start, end in find_amounts(text):
                yield Claim("amount", text[start:end], amount, index, start, context)
        if "dates" in kinds:
            for days, start, end in find_dates(text):
                yield Claim("date", text[start:end], days, index, start, context)
        if "durations" in kinds:
            for duration, start, end in find_durations(text):
                yield Claim("duration", text[start:end], duration, index, start, context)
        if "quantities" in kinds and quantity_pattern is not None:
            for match in quantity_pattern.finditer(text):
                count = (match["n1"] or match["n2"]).lower()
                number = _NUMBER_WORDS.get(count) or int(count)
                item = " ".join((match["name1"] or match["name2"]).split()).lower()
                yield Claim("quantity", match[0], (item, number), index, match.start(), context)
