"""The facts guard's evidence: does any source back a claim, and if not, what do the
sources say instead — worded so a model can correct exactly that value."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

from tierflow.guardrails.facts.claims import Claim
from tierflow.guardrails.facts.sources import Found, SourceFacts, Where
from tierflow.guardrails.facts.values import (
    Amount,
    DateValue,
    Duration,
    same_day,
    show_date,
    show_duration,
)

_SHOWN = 5  # alternatives named per unsupported claim
T = TypeVar("T")


class Evidence:
    """The sources of one check, merged for lookup."""

    def __init__(self, sources: Sequence[SourceFacts], request: SourceFacts | None) -> None:
        self.sources = list(sources)
        self.numbers = set().union(*(s.numbers for s in self.sources))
        self.codes = set().union(*(s.codes for s in self.sources))
        if request is not None:  # the customer's own ids and codes, nothing else
            self.numbers |= request.numbers
            self.codes |= request.codes
        self.amounts = [f for s in self.sources for f in s.amounts]
        self.dates = [f for s in self.sources for f in s.dates]
        self.items = [f for s in self.sources for f in s.items]
        self.durations = [f for s in self.sources for f in s.durations]
        self.ids = [f for s in self.sources for f in s.ids]

    def item_names(self) -> list[str]:
        return [found.value[0] for found in self.items]

    def supports(self, claim: Claim) -> bool:
        if claim.kind == "id":
            return bool(claim.value in self.numbers)
        if claim.kind == "code":
            return claim.value.upper() in self.codes or claim.value in self.numbers
        if claim.kind == "amount":
            return any(claim.value.matches(found.value) for found in self.amounts)
        if claim.kind == "date":
            return any(
                same_day(said, known) for found in self.dates for known in found.value
                for said in claim.value
            )  # fmt: skip
        if claim.kind == "duration":
            return any(found.value == claim.value for found in self.durations)
        if claim.kind == "quantity":
            name, count = claim.value
            return any(f.value[0].lower() == name and f.value[1] == count for f in self.items)
        return False


def describe_unsupported(
    claim: Claim, orders: Sequence[str], evidence: Evidence, id_word: str
) -> str:
    """`<claim> is not in any source; <what the sources say instead>`."""
    about = f" ({id_word} {', '.join(orders)})" if orders and claim.kind != "id" else ""
    field = f" in field {claim.field}" if claim.field else ""
    head = f"{_kind_label(claim, id_word)} {_shown(claim)}{about}{field} is not in any source"
    instead = _instead(claim, orders, evidence, id_word)
    return f"{head}; {instead}" if instead else head


def _kind_label(claim: Claim, id_word: str) -> str:
    return {"id": id_word, "quantity": "quantity"}.get(claim.kind, claim.kind)


def _shown(claim: Claim) -> str:
    if claim.kind == "amount":
        return str(claim.value)
    if claim.kind == "quantity":
        return repr(claim.text)
    return str(claim.text)


def _instead(claim: Claim, orders: Sequence[str], evidence: Evidence, id_word: str) -> str:
    if claim.kind == "id":
        by_value: dict[str, list[str]] = {}
        for found in evidence.ids:
            sources = by_value.setdefault(found.value, [])
            if found.where.source not in sources:
                sources.append(found.where.source)
        listed = ", ".join(
            f"{value} ({', '.join(sources)})" for value, sources in list(by_value.items())[:_SHOWN]
        )
        return f"the {id_word}s in the sources are {listed}" if listed else ""
    if claim.kind == "code":
        return _similar_codes(str(claim.value), evidence)
    if claim.kind == "amount":
        target: Amount = claim.value
        return _nearest(
            evidence.amounts,
            orders,
            id_word,
            distance=lambda a: abs(a.value - target.value),
            show=str,
            what="amounts",
        )
    if claim.kind == "date":
        said = min(claim.value, key=lambda d: (d[0] or 0, d[1], d[2]))
        return _nearest(
            evidence.dates,
            orders,
            id_word,
            distance=lambda days: min(_day_distance(said, d) for d in days),
            show=lambda days: " or ".join(sorted(show_date(d) for d in days)),
            what="dates",
        )
    if claim.kind == "duration":
        wanted: Duration = claim.value
        same_unit = [f for f in evidence.durations if f.value[2] == wanted[2]]
        return _nearest(
            same_unit,
            (),
            id_word,
            distance=lambda d: Decimal(abs(d[0] - wanted[0]) + abs(d[1] - wanted[1])),
            show=show_duration,
            what=f"{wanted[2]} durations",
        )
    if claim.kind == "quantity":
        name = claim.value[0]
        records = [f for f in evidence.items if f.value[0].lower() == name]
        return "; ".join(
            f"{f.value[0]} has quantity {f.value[1]} ({_where(f.where)})" for f in records[:_SHOWN]
        )
    return ""


def _nearest(
    found: Sequence[Found[T]],
    orders: Sequence[str],
    id_word: str,
    *,
    distance: Callable[[T], Decimal | int],
    show: Callable[[T], str],
    what: str,
) -> str:
    owned = [f for f in found if orders and f.where.owners & set(orders)]
    pool = owned or list(found)
    if not pool:
        return f"no source states any {what}"
    # Nearest value first; a stated value before one derived from others (a line total).
    ranked = sorted(pool, key=lambda f: (distance(f.value), f.where.derived))
    shown = list(dict.fromkeys(f"{show(f.value)} {_where(f.where)}" for f in ranked))
    listed = ", ".join(shown[:_SHOWN])
    if owned:
        return f"for {id_word} {', '.join(orders)} the sources have {listed}"
    return f"the closest {what} in the sources: {listed}"


def _where(where: Where) -> str:
    """`at items[0].unit_price_usd (Espresso Machine Pro) in order_details`."""
    at = f"at {where.path} " if where.path else ""
    note = f"({where.note}) " if where.note else ""
    return f"{at}{note}in {where.source}"


def _similar_codes(code: str, evidence: Evidence) -> str:
    prefix = code.split("-", 1)[0].upper()
    known = _unique((c, s.label) for s in evidence.sources for c in sorted(s.codes))
    similar = [(c, label) for c, label in known if c.split("-", 1)[0] == prefix] or known
    listed = ", ".join(f"{c} ({label})" for c, label in similar[:_SHOWN])
    return f"codes in the sources: {listed}" if listed else ""


def _day_distance(a: DateValue, b: DateValue) -> int:
    return abs(((a[0] or b[0] or 0) - (b[0] or 0)) * 372 + (a[1] - b[1]) * 31 + (a[2] - b[2]))


def _unique(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(pairs))
