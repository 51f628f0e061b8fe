"""Facts guard: every checkable claim of an answer must match a source.

The sources are a fixed knowledge base (declared key facts and documents) and the run's
own observations — the tool results in `context["messages"]`, JSON or text. The claims
are the values `claims` finds (ids, codes, amounts, dates, quantities, optionally
durations) plus the declared key facts: a sentence that names a key ("return window")
and then gives a value of the key's kind ("14 days") must give the declared value.

Everything is read normalised (`normalize`: NFKC, invisible characters removed), and a
JSON answer field by field (`answer`), so a claim is found in the usual surface
forms ("three hundred fifty-nine dollars", "359$", "order no. 1,042", "ORD1042"; the list
is in docs/guardrails.md).

A failing verdict names each unsupported claim, its field in a JSON answer, and where the
true value is, e.g.
`amount $359.00 (order 1042) is not in any source; for order 1042 the sources have
$349.00 at items[0].unit_price_usd (Espresso Machine Pro) in order_details, …`, so a
reask can fix exactly that.
There is no deterministic repair (`fixed` stays None): which value was meant is the
model's to say.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.facts.answer import Answer, read_answer
from tierflow.guardrails.facts.claims import (
    Claim,
    Segment,
    compile_id_patterns,
    default_id_patterns,
    extract_claims,
    split_sentences,
)
from tierflow.guardrails.facts.report import Evidence, describe_unsupported
from tierflow.guardrails.facts.sources import observations, read_source
from tierflow.guardrails.facts.values import (
    find_amounts,
    find_dates,
    find_durations,
    same_day,
    show_date,
    show_duration,
)
from tierflow.guardrails.normalize import normalize
from tierflow.guardrails.phrases import phrase_pattern
from tierflow.guardrails.reasons import Problems

CLAIM_KINDS = ("ids", "codes", "amounts", "dates", "quantities", "facts", "durations")
# Durations are off by default: answers derive them ("delivered 3 days ago") too often.
DEFAULT_CLAIMS = ("ids", "codes", "amounts", "dates", "quantities", "facts")
KNOWLEDGE = "knowledge base"
REQUEST = "the request"

Knowledge = Mapping[str | tuple[str, ...], str]


class FactsGuard(GuardrailBase):
    """Cross-reference an answer with the knowledge base and the run's observations.

    `knowledge` declares key facts, `{"return window": "30 days", "express shipping":
    "$9.90"}`; a key may be a tuple of phrasings. `documents` are fixed texts (policy
    articles), a mapping label → text or plain texts. `check` picks the claim kinds (see
    `CLAIM_KINDS`); `id_words` the words an id follows ("order 1042") and names ids in
    reasons; `id_patterns` the shapes of an id, regular expressions whose `id` group is
    the id (default: `default_id_patterns(id_words)` — "order no. 1,042", "Order-1042",
    "ORD1042", "#1042" …). Ids and codes in the request itself (`context["objective"]`)
    count as sourced: repeating the customer's order number is not a hallucination.
    Every text is read normalised (`normalize`: NFKC, invisible characters removed).
    """

    kind = "facts"

    def __init__(
        self,
        knowledge: Knowledge | None = None,
        *,
        documents: Mapping[str, str] | Iterable[str] = (),
        check: Collection[str] = DEFAULT_CLAIMS,
        id_words: Iterable[str] = ("order",),
        id_patterns: Iterable[str | re.Pattern[str]] | None = None,
        name: str = "facts",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I couldn't confirm the details of this answer.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        unknown = set(check) - set(CLAIM_KINDS)
        if unknown:
            raise ValueError(f"unknown claim kinds {sorted(unknown)}; known: {CLAIM_KINDS}")
        self.kinds = frozenset(check)
        self.id_words = tuple(w.strip() for w in id_words if w.strip())
        self._id_word = self.id_words[0] if self.id_words else "id"
        self._custom_id_patterns = id_patterns is not None
        self.id_patterns = compile_id_patterns(
            default_id_patterns(self.id_words) if id_patterns is None else id_patterns
        )
        self.knowledge: dict[tuple[str, ...], str] = {
            tuple(normalize(k) for k in ((key,) if isinstance(key, str) else key)): normalize(value)
            for key, value in (knowledge or {}).items()
        }
        self.documents: dict[str, str] = (
            {label: normalize(text) for label, text in documents.items()}
            if isinstance(documents, Mapping)
            else {f"{KNOWLEDGE} #{i + 1}": normalize(text) for i, text in enumerate(documents)}
        )
        facts_text = "\n".join(f"{keys[0]}: {value}." for keys, value in self.knowledge.items())
        self._fixed_sources = [read_source(KNOWLEDGE, facts_text)] + [
            read_source(label, text) for label, text in self.documents.items()
        ]
        self._key_patterns = [
            (keys, value, pattern)
            for keys, value in self.knowledge.items()
            if (pattern := phrase_pattern(keys)) is not None
        ]

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        try:
            return self._check(candidate, context)
        except RecursionError:
            return Verdict(ok=False, reason="the answer is nested too deeply to check")

    def _check(self, candidate: str, context: Mapping[str, Any] | None) -> Verdict:
        sources = self._fixed_sources + [
            read_source(label, text) for label, text in observations(context)
        ]
        objective = (context or {}).get("objective")
        request = read_source(REQUEST, objective) if isinstance(objective, str) else None
        evidence = Evidence(sources, request)

        answer = read_answer(normalize(candidate))
        segments = split_sentences(answer.texts, self.id_patterns, answer.owners)
        answer_ids = list(
            dict.fromkeys([*(i for _, i in answer.ids), *(i for s in segments for i in s.ids)])
        )
        claims = list(extract_claims(segments, self.kinds, evidence.item_names()))
        claims += self._json_claims(answer, evidence)

        problems: list[str] = []
        checked = 0
        seen: set[tuple[str, str]] = set()
        for claim in claims:
            key = (claim.kind, repr(claim.value))
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            if not evidence.supports(claim):
                orders = claim.context_ids or (tuple(answer_ids) if len(answer_ids) == 1 else ())
                problems.append(describe_unsupported(claim, orders, evidence, self._id_word))
        if "facts" in self.kinds:
            fact_problems, fact_count = self._key_fact_problems(segments)
            problems += fact_problems
            checked += fact_count
        if problems:
            return Verdict(
                ok=False,
                reason=(
                    f"{len(problems)} claim{'s' if len(problems) != 1 else ''} not backed by "
                    f"the sources: {'; '.join(problems)}. Use only values from the tool "
                    "results and the knowledge base, or leave the detail out"
                ),
            )
        return Verdict(
            ok=True,
            reason=f"{checked} checkable claim{'s' if checked != 1 else ''} match the sources",
        )

    def _json_claims(self, answer: Answer, evidence: Evidence) -> list[Claim]:
        """The claims of a JSON answer's non-text values (ids, amounts, item quantities)."""
        claims: list[Claim] = []
        if "ids" in self.kinds:
            claims += [Claim("id", v, v, -1, 0, field=f) for f, v in answer.ids]
        if "amounts" in self.kinds:
            claims += [
                Claim("amount", str(a.value), a.value, -1, 0, a.owners, a.field)
                for a in answer.amounts
            ]
        if "quantities" in self.kinds:
            known = {name.lower() for name in evidence.item_names()}
            claims += [
                Claim("quantity", f"{i.value[1]} × {i.value[0]}", i.value, -1, 0, i.owners, i.field)
                for i in answer.items
                if i.value[0] in known
            ]
        return claims

    def _key_fact_problems(self, segments: list[Segment]) -> tuple[list[str], int]:
        problems = Problems()
        checked = 0
        for keys, declared, pattern in self._key_patterns:
            for segment in segments:
                for mention in pattern.finditer(segment.text):
                    rest = self._until_next_key(segment.text, mention.end(), pattern)
                    wrong = _compare_fact(declared, rest)
                    if wrong is None:
                        continue  # the sentence names the key but gives no value of its kind
                    checked += 1
                    if wrong:
                        problems.add(f"{keys[0]!r} is {declared} ({KNOWLEDGE}), not {wrong}")
        return problems, checked

    def _until_next_key(self, text: str, start: int, own: re.Pattern[str]) -> str:
        """The text after a key mention, up to another declared key's mention."""
        end = len(text)
        for _, _, pattern in self._key_patterns:
            if pattern is own:
                continue
            other = pattern.search(text, start)
            if other is not None:
                end = min(end, other.start())
        return text[start:end]

    def describe(self) -> dict[str, Any]:
        return {
            "knowledge": {" | ".join(keys): value for keys, value in self.knowledge.items()},
            "documents": sorted(self.documents),
            "check": [k for k in CLAIM_KINDS if k in self.kinds],
            "id_words": list(self.id_words),
            **(
                {"id_patterns": [p.pattern for p in self.id_patterns]}
                if self._custom_id_patterns
                else {}
            ),
        }


def _compare_fact(declared: str, text: str) -> str | None:
    """None if `text` states no value of the declared value's kind; "" if the first one
    it states is the declared value; otherwise that value, as written."""
    amount = next(find_amounts(declared), None)
    if amount is not None:
        claimed = next(find_amounts(text), None)
        if claimed is None:
            return None
        return "" if amount[0].matches(claimed[0]) else str(claimed[0])
    duration = next(find_durations(declared), None)
    if duration is not None:
        stated = next(find_durations(text), None)
        if stated is None:
            return None
        same = stated[0] == duration[0]
        return "" if same else show_duration(stated[0])
    date = next(find_dates(declared), None)
    if date is not None:
        said = next(find_dates(text), None)
        if said is None:
            return None
        match = any(same_day(c, s) for c in said[0] for s in date[0])
        return "" if match else show_date(min(said[0], key=lambda d: d[0] or 0))
    # A free-text value can't be told apart from the words around it: the key fact is
    # only a source then (its value supports other claims), not a claim of its own.
    return None
