"""Policy / PII guard: personal data, banned phrases and topics, and a maximum length.

Detection is deterministic (`detectors`: patterns with checksums) and runs on the
normalised text (`normalize`: NFKC, invisible characters removed), so an address with a
fullwidth at sign or a card number with zero-width spaces between its digits is found;
the masks go on the original text's spans. The verdict never repeats the personal data
it found — reasons are stored with the run and shown to the model — only its kind and a
hint (`card number ending 1111`). Its `fixed` candidate is the text with each finding
replaced by a mask (`[EMAIL]`, `[CARD]` …), banned phrases by `[removed]`, and cut to
the maximum length, so `on_fail="fix"` can send it on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.json_validation import is_json
from tierflow.guardrails.normalize import Normalized, normalize, normalized
from tierflow.guardrails.phrases import phrase_pattern
from tierflow.guardrails.pii.detectors import DETECTORS, LABELS, Finding, non_overlapping

PII_KINDS: tuple[str, ...] = tuple(DETECTORS)
_MASKS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ssn": "[NATIONAL ID]",
    "fr_nir": "[NATIONAL ID]",
    "es_dni": "[NATIONAL ID]",
}
REMOVED = "[removed]"
# Personal data, banned phrases and banned topics found in a (normalised) text.
_Violations = tuple[list[Finding], list[re.Match[str]], list[re.Match[str]]]
_MASK_ROUNDS = 3  # a mask can join what was around it into a new finding: mask again


class PiiGuard(GuardrailBase):
    """Flag (and, as a fix, mask) personal data and policy violations in an answer.

    `detect` picks the kinds: email, card, iban, national_id, phone (all by default).
    `allow` lists values that are not personal data here (the shop's own address); an
    entry starting with `@` allows a whole email domain. `banned_phrases` and
    `banned_topics` (topic → keywords) match case-insensitively on word boundaries.
    `max_chars` bounds the answer's length.
    """

    kind = "pii"

    def __init__(
        self,
        *,
        detect: Collection[str] = PII_KINDS,
        allow: Iterable[str] = (),
        banned_phrases: Iterable[str] = (),
        banned_topics: Mapping[str, Iterable[str]] | None = None,
        max_chars: int | None = None,
        name: str = "pii",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I can't share that.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        unknown = set(detect) - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")
        if max_chars is not None and max_chars < 1:
            raise ValueError("max_chars must be >= 1")
        self.detect = tuple(kind for kind in PII_KINDS if kind in detect)
        self.allow = frozenset(normalize(v).strip().lower() for v in allow if v.strip())
        self.banned_phrases = tuple(p for p in (normalize(s).strip() for s in banned_phrases) if p)
        self.banned_topics = {
            topic: tuple(k for k in (normalize(s).strip() for s in keywords) if k)
            for topic, keywords in (banned_topics or {}).items()
        }
        self.max_chars = max_chars
        self._phrases = phrase_pattern(self.banned_phrases)
        self._topic_of = {_normal(k): t for t, ks in self.banned_topics.items() for k in ks}
        self._topics = phrase_pattern(self._topic_of)

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        text = normalized(candidate)
        findings, phrases, topics = self._violations(text.text)
        too_long = self.max_chars is not None and len(candidate) > self.max_chars
        if not (findings or phrases or topics or too_long):
            return Verdict(ok=True, reason="no personal data or banned content")
        problems: list[str] = []
        if findings:
            listed = ", ".join(f"{LABELS[f.kind]} ({f.hint})" for f in findings)
            problems.append(f"it contains personal data — {listed}; remove or mask it")
        for phrase in _unique(m.group().lower() for m in phrases):
            problems.append(f"it uses the banned phrase {phrase!r}")
        for keyword in _unique(_normal(m.group()) for m in topics):
            topic = self._topic_of.get(keyword, keyword)
            problems.append(f"it touches the banned topic {topic!r} ({keyword!r})")
        if too_long:
            problems.append(
                f"it is {len(candidate)} characters long; the maximum is {self.max_chars}"
            )
        first = (findings, phrases, topics)
        return Verdict(
            ok=False, reason="; ".join(problems), fixed=self._fix(candidate, text, first)
        )

    def _violations(self, text: str) -> _Violations:
        """Personal data, banned phrases and banned topics in a normalised text."""
        findings = [f for f in self._personal_data(text) if not self._allowed(f)]
        return findings, _matches(self._phrases, text), _matches(self._topics, text)

    def _fix(self, candidate: str, text: Normalized, found: _Violations) -> str | None:
        """The candidate masked (until nothing is left to mask) and cut; None when that
        fails or breaks a JSON answer. `found` are the violations in `text`."""
        fixed = candidate
        for _ in range(_MASK_ROUNDS):
            findings, phrases, topics = found
            if not (findings or phrases or topics):
                break
            spans = [(*text.span(f.start, f.end), _MASKS[f.kind]) for f in findings]
            spans += [(*text.span(m.start(), m.end()), REMOVED) for m in [*phrases, *topics]]
            fixed = _mask(fixed, spans)
            text = normalized(fixed)
            found = self._violations(text.text)
        else:
            if any(found):
                return None  # masking keeps making new findings: no safe repair
        fixed = self._shorten(fixed)
        if is_json(candidate) and not is_json(fixed):
            return None  # masking or cutting broke the JSON: no safe repair
        return fixed

    def _personal_data(self, text: str) -> list[Finding]:
        found = [finding for kind in self.detect for finding in DETECTORS[kind](text)]
        return non_overlapping(found)

    def _allowed(self, finding: Finding) -> bool:
        value = finding.canonical.strip().lower()
        if value in self.allow:
            return True
        return finding.kind == "email" and f"@{value.partition('@')[2]}" in self.allow

    def _shorten(self, text: str) -> str:
        if self.max_chars is None or len(text) <= self.max_chars:
            return text
        cut = text[: self.max_chars - 1]
        space = cut.rfind(" ")
        if space > self.max_chars // 2:  # end on a word, unless that loses half the text
            cut = cut[:space]
        return cut.rstrip() + "…"

    def describe(self) -> dict[str, Any]:
        return {
            "detect": list(self.detect),
            "allow": sorted(self.allow),
            "banned_phrases": list(self.banned_phrases),
            "banned_topics": {t: list(ks) for t, ks in self.banned_topics.items()},
            "max_chars": self.max_chars,
        }


def _matches(pattern: re.Pattern[str] | None, text: str) -> list[re.Match[str]]:
    return list(pattern.finditer(text)) if pattern is not None else []


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _mask(text: str, spans: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    position = 0
    for start, end, mask in sorted(spans):
        if start < position:  # overlaps a span already masked
            continue
        out += [text[position:start], mask]
        position = end
    out.append(text[position:])
    return "".join(out)
