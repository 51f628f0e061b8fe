"""What the facts guard may trust: the knowledge base and the run's own observations,
read into values it can look claims up in.

A source is a label (the tool's name, "knowledge base") and its text. JSON is walked
(every value keeps its path and the ids of the records around it, so "order 1042's
unit_price_usd" can be named); anything else is read as text. Reading a source is
cached by its text, so a run's growing history is read once per message, not once per
check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

from tierflow.guardrails.facts.values import (
    DIGITS,
    Amount,
    DateValue,
    Duration,
    cents_of,
    find_amounts,
    find_codes,
    find_dates,
    find_durations,
)
from tierflow.guardrails.json_validation import field_path
from tierflow.guardrails.normalize import normalize

_DIGIT = re.compile(r"\d")
_ID_KEY = re.compile(r"(?:^|_)ids?$")
_MONEY_KEY = re.compile(r"price|amount|total|cost|fee|refund|paid|balance|charge|usd|eur|gbp")
_CURRENCY_KEY = re.compile(r"(?:^|_)(usd|eur|gbp)(?:$|_)")
_NAME_KEYS = ("name", "title", "product", "product_name")
_QUANTITY_KEYS = ("quantity", "qty", "count")


@dataclass(frozen=True)
class Where:
    """Where a value was found: the source, the JSON path, the records around it."""

    source: str
    path: str = ""
    owners: frozenset[str] = frozenset()
    note: str = ""
    derived: bool = False  # computed from other values (a line total), not stated


T = TypeVar("T")


@dataclass(frozen=True)
class Found(Generic[T]):
    value: T
    where: Where


@dataclass
class SourceFacts:
    """Everything checkable in one source. (Shared through the cache: read, never change.)"""

    label: str
    numbers: set[str] = field(default_factory=set)  # integer tokens, 3+ digits
    ids: list[Found[str]] = field(default_factory=list)  # values under *_id / id keys
    codes: set[str] = field(default_factory=set)
    amounts: list[Found[Amount]] = field(default_factory=list)
    dates: list[Found[frozenset[DateValue]]] = field(default_factory=list)
    items: list[Found[tuple[str, int]]] = field(default_factory=list)  # (name, quantity)
    durations: list[Found[Duration]] = field(default_factory=list)

    def read_text(self, text: str, where: Where) -> None:
        self.numbers.update(DIGITS.findall(text))
        self.codes.update(code.upper() for code, _, _ in find_codes(text))
        self.amounts += [Found(a, where) for a, _, _ in find_amounts(text)]
        self.dates += [Found(d, where) for d, _, _ in find_dates(text)]
        self.durations += [Found(d, where) for d, _, _ in find_durations(text)]

    def read_json(
        self, value: Any, path: tuple[str | int, ...], owners: frozenset[str], item: str = ""
    ) -> None:
        """Walk a JSON value; `owners` are the ids of the records around it, `item` the
        name of the line item it belongs to (both for naming where a value is)."""
        if isinstance(value, Mapping):
            self._read_object(value, path, owners, item)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self.read_json(child, (*path, index), owners, item)
        elif isinstance(value, str):
            if _DIGIT.search(value):  # every checkable value has a digit; most strings don't
                self.read_text(normalize(value), self._where(path, owners, item))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._read_number(value, path, owners, item)

    def _read_object(
        self,
        record: Mapping[Any, Any],
        path: tuple[str | int, ...],
        owners: frozenset[str],
        item: str,
    ) -> None:
        own = {
            str(v)
            for k, v in record.items()
            if isinstance(k, str) and _ID_KEY.search(k.lower()) and _is_id(v)
        }
        owners = owners | own
        name = next((record[k] for k in _NAME_KEYS if isinstance(record.get(k), str)), None)
        name = " ".join(normalize(name).split()) if name is not None else None
        quantity = next((record[k] for k in _QUANTITY_KEYS if _is_int(record.get(k))), None)
        if name is not None and quantity is not None:
            item = name
            self.items.append(Found((name, quantity), self._where(path, owners)))
            if quantity != 1:  # (for one, the line total is the unit price itself)
                self._read_line_totals(record, path, owners, name, quantity)
        for key, child in record.items():
            self.read_json(child, (*path, str(key)), owners, item)

    def _read_line_totals(
        self,
        record: Mapping[Any, Any],
        path: tuple[str | int, ...],
        owners: frozenset[str],
        name: str,
        quantity: int,
    ) -> None:
        """A line total (quantity times unit price) is a fact the source implies."""
        for key, price in record.items():
            if isinstance(key, str) and "price" in key.lower() and _is_number(price):
                total = cents_of(price * quantity)
                if total is not None:
                    note = f"{quantity} × {key}, {name}"
                    where = self._where(path, owners, note, derived=True)
                    self.amounts.append(Found(Amount(total, _currency(key)), where))

    def _read_number(
        self, number: float, path: tuple[str | int, ...], owners: frozenset[str], item: str
    ) -> None:
        key = next((str(p).lower() for p in reversed(path) if isinstance(p, str)), "")
        if isinstance(number, int) and abs(number) >= 100:
            self.numbers.add(str(number))
            if _ID_KEY.search(key):
                self.ids.append(Found(str(number), self._where(path, owners)))
        if _MONEY_KEY.search(key) and not _ID_KEY.search(key):
            cents = cents_of(number)
            if cents is not None:
                where = self._where(path, owners, item)
                self.amounts.append(Found(Amount(cents, _currency(key)), where))

    def _where(
        self,
        path: tuple[str | int, ...],
        owners: frozenset[str],
        note: str = "",
        *,
        derived: bool = False,
    ) -> Where:
        return Where(self.label, field_path(path, root=""), owners, note, derived)


@lru_cache(maxsize=1024)
def read_source(label: str, text: str) -> SourceFacts:
    """The checkable values of one source (cached: sources repeat across checks), read
    normalised (`normalize`)."""
    facts = SourceFacts(label)
    text = normalize(text)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            facts.read_json(json.loads(stripped), (), frozenset())
            return facts
        except (ValueError, RecursionError):
            pass  # not JSON after all: read it as text
    facts.read_text(text, Where(label))
    return facts


def observations(context: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """(label, text) of each tool result in the run's messages (LangChain messages or
    role dicts). A result's label is its tool's name."""
    if not context:
        return
    messages = context.get("messages")
    for message in messages if isinstance(messages, list) else []:
        kind = _field(message, "type") or _field(message, "role")
        if kind != "tool":
            continue
        label = _field(message, "name") or "a tool result"
        yield str(label), _text(_field_raw(message, "content"))


def _field_raw(message: Any, name: str) -> Any:
    if isinstance(message, Mapping):
        return message.get(name)
    return getattr(message, name, None)


def _field(message: Any, name: str) -> str | None:
    value = _field_raw(message, name)
    return value if isinstance(value, str) else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        parts: Iterable[Any] = (
            block.get("text") if isinstance(block, Mapping) else block for block in content
        )
        return "\n".join(p for p in parts if isinstance(p, str))
    return "" if content is None else str(content)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, str) and 0 < len(value) <= 64)


def _currency(key: str) -> str | None:
    match = _CURRENCY_KEY.search(key.lower())
    return match.group(1).upper() if match else None
