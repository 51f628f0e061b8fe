"""An answer as the facts guard reads it: its texts, and for a JSON answer its fields.

A plain answer is one text. A JSON answer (an object or an array) is walked value by
value, each value keeping its path (`refund.amount_usd`, `items[0].price`), so a wrong
value is named where it is:

- a string is a text, read for claims like any answer (and, under a money key, a bare
  number is an amount: `"total": "359.00"`);
- a number under a money key (price, amount, total, cost, fee, refund, paid, balance,
  charge, usd/eur/gbp … and not a count, id, rate, days …) is an amount, in the currency
  its key or a sibling `currency` field names; zero is not a claim (a placeholder more
  often than a statement);
- an integer, or a string of digits, under an `id`/`*_id`/`*_ids` key is an id;
- a record with a name and a quantity (`{"name": "Ceramic Cup Set", "quantity": 3}`) is
  a quantity claim, checked when the sources know the item.

The ids of the records around a value (its `*_id` fields) say which order it is about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tierflow.guardrails.facts.values import Amount, cents_of, to_cents
from tierflow.guardrails.json_validation import field_path
from tierflow.guardrails.normalize import normalize

_MAX_DEPTH = 50
_ID_STRING = re.compile(r"#?(\d{1,3}(?:,\d{3})+|\d{3,})")
_BARE_NUMBER = re.compile(r"\d[\d.,' ]*")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")
_MONEY_WORDS = frozenset({
    "price", "prices", "amount", "amounts", "total", "subtotal", "cost", "costs", "fee",
    "fees", "refund", "refunded", "refunds", "paid", "payment", "balance", "charge",
    "charged", "due", "owed", "credit", "usd", "eur", "gbp", "dollars", "euros",
})  # fmt: skip
_NOT_MONEY_WORDS = frozenset({
    "id", "ids", "count", "qty", "quantity", "items", "number", "num", "no", "percent",
    "pct", "rate", "ratio", "days", "day", "weeks", "hours", "date", "time", "points",
    "score", "rank", "version",
})  # fmt: skip
_CURRENCIES = {"usd": "USD", "eur": "EUR", "gbp": "GBP", "dollars": "USD", "euros": "EUR"}
_NAME_KEYS = ("name", "title", "product", "product_name", "item")
_QUANTITY_KEYS = ("quantity", "qty", "count")


@dataclass(frozen=True)
class JsonValue:
    """A value of a JSON answer that is a claim of its own: where, what, whose."""

    field: str
    value: Any  # Amount, or (item name, quantity)
    owners: tuple[str, ...]


@dataclass
class Answer:
    texts: list[tuple[str, str]] = field(default_factory=list)  # (field or "", text)
    ids: list[tuple[str, str]] = field(default_factory=list)  # (field, id)
    amounts: list[JsonValue] = field(default_factory=list)
    items: list[JsonValue] = field(default_factory=list)
    owners: dict[str, tuple[str, ...]] = field(default_factory=dict)  # text field → ids


def read_answer(candidate: str) -> Answer:
    """The answer's texts and, for a JSON answer, its claims by field (see the module
    docstring). `candidate` is normalised already; JSON strings are normalised here."""
    answer = Answer()
    stripped = candidate.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            pass  # not JSON after all: one text
        else:
            _walk(value, (), answer, owners=(), currency=None, depth=0)
            return answer
    answer.texts.append(("", candidate))
    return answer


def _walk(
    value: Any,
    path: tuple[str | int, ...],
    answer: Answer,
    *,
    owners: tuple[str, ...],
    currency: str | None,
    depth: int,
) -> None:
    if depth > _MAX_DEPTH:
        return
    key = next((str(p) for p in reversed(path) if isinstance(p, str)), "")
    where = field_path(path, root="")
    if isinstance(value, Mapping):
        _walk_record(value, path, answer, owners=owners, currency=currency, depth=depth)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _walk(child, (*path, index), answer, owners=owners, currency=currency, depth=depth + 1)
    elif isinstance(value, str):
        text = normalize(value)
        bare = text.strip()
        if _is_id_key(key) and (match := _ID_STRING.fullmatch(bare)):
            answer.ids.append((where, match.group(1).replace(",", "")))
        elif _is_money(key) and _BARE_NUMBER.fullmatch(bare):
            _add_amount(answer, where, to_cents(bare), _currency(key, currency), owners)
        else:
            answer.texts.append((where, text))
            answer.owners[where] = owners
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int) and _is_id_key(key):
        answer.ids.append((where, str(value)))
    elif isinstance(value, int | float) and _is_money(key):
        _add_amount(answer, where, cents_of(value), _currency(key, currency), owners)


def _add_amount(
    answer: Answer,
    where: str,
    number: Decimal | None,
    currency: str | None,
    owners: tuple[str, ...],
) -> None:
    if number:  # (zero is not a claim; None: inf, nan or not a number)
        answer.amounts.append(JsonValue(where, Amount(number, currency), owners))


def _walk_record(
    record: Mapping[Any, Any],
    path: tuple[str | int, ...],
    answer: Answer,
    *,
    owners: tuple[str, ...],
    currency: str | None,
    depth: int,
) -> None:
    own = [_id_of(v) for k, v in record.items() if _is_id_key(str(k))]
    owners = tuple(dict.fromkeys([*owners, *(i for i in own if i)]))
    declared = record.get("currency")
    if isinstance(declared, str) and declared.strip().lower() in _CURRENCIES:
        currency = _CURRENCIES[declared.strip().lower()]
    name = next((record[k] for k in _NAME_KEYS if isinstance(record.get(k), str)), None)
    quantity = next((record[k] for k in _QUANTITY_KEYS if isinstance(record.get(k), int)), None)
    if name is not None and quantity is not None and not isinstance(quantity, bool):
        item = (" ".join(normalize(name).split()).lower(), quantity)
        answer.items.append(JsonValue(field_path(path, root=""), item, owners))
    for key, child in record.items():
        _walk(child, (*path, str(key)), answer, owners=owners, currency=currency, depth=depth + 1)


def _id_of(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and (match := _ID_STRING.fullmatch(value.strip())):
        return match.group(1).replace(",", "")
    return ""


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def _is_id_key(key: str) -> bool:
    return _words(key)[-1:] in (["id"], ["ids"])


def _is_money(key: str) -> bool:
    words = _words(key)
    return bool(_MONEY_WORDS.intersection(words)) and not _NOT_MONEY_WORDS.intersection(words)


def _currency(key: str, declared: str | None) -> str | None:
    named = [_CURRENCIES[w] for w in _words(key) if w in _CURRENCIES]
    return named[0] if named else declared
