"""What a secret looks like: the rules the redactor finds secrets with, and the scan.

A `Rule` is a pattern and the kind of secret it finds. Three sources:

- **Provider formats** come from a maintained ruleset, detect-secrets: every regex plugin
  in its registry (`get_mapping_from_secret_type_to_class`), its kind named after the
  plugin's secret type (`GitHub Token` → `github_token`), except `Public IP (ipv4)` (an
  address is not a credential). Its private-key plugin matches a PEM header only; here
  the rule takes the whole block. A match grows to the whole token it sits in: a plugin
  that knows the first 24 characters of a 99-character Stripe key masks all 99.
  `GAPS` adds the few formats detect-secrets 1.5 has no plugin for, and its base64
  entropy measure (`Base64HighEntropyString`, the plugin's own limit) finds random
  tokens of 32 characters or more that no format names — AWS secret access keys
  among them.
- **Names** (`keyword_rule`): a sensitive name followed by its value, however it is
  written — `password=…`, `"api_key": "…"`, `x-api-key: …`, YAML `secret_key: …`, a
  repr's `'private_key': '…'`, `Authorization: Bearer …`, `the password is …`,
  `my api key: …`. A name matches as `normalised_name` compares names: `_`, `-`, `.` or
  a space may stand between its letters, and anything may come before it
  (`db_password`, `x-api-key`), nothing after (`max_tokens` is not `token`).
- **Personal data**: `tierflow.guardrails.pii.detectors` — card numbers (Luhn), IBANs
  (mod 97), US SSNs, … — the detectors the PII guard uses.

`scan` applies them to the NFKC-normalised text (a fullwidth letter or a zero-width
space doesn't hide a secret) and returns spans of the original text, overlapping
matches merged.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.keyword import DENYLIST
from detect_secrets.plugins.private_key import PrivateKeyDetector

from tierflow.guardrails.normalize import normalized
from tierflow.guardrails.pii.detectors import DETECTORS, non_overlapping

# detect-secrets plugins that find something other than a credential.
NOT_SECRETS = frozenset({"Public IP (ipv4)"})

# Formats detect-secrets 1.5 has no plugin for (its GitHub plugin knows the classic
# `ghp_…` tokens only, its Stripe plugin live keys only).
GAPS: tuple[tuple[str, str], ...] = (
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    ("github_token", r"github_pat_[A-Za-z0-9_]{22,}"),
    ("stripe_access_key", r"[rs]k_test_[0-9a-zA-Z]{24,}"),
    # Encrypted PKCS#8 and any other PEM private key its header list doesn't name.
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    ),
)

# A token, as far as a provider format's match grows: base64 and base64url characters
# (a dot inside it too, as in a JWT), and the characters a token may start after.
_TOKEN_TAIL = re.compile(r"(?:[A-Za-z0-9_\-+/=]|\.(?=[A-Za-z0-9_-]))*")
_TOKEN_HEAD = frozenset(string.ascii_letters + string.digits + "_-+")
# What some plugins match around a secret (`(?:\s|=|:|"|^)AKC…(?:\s|"|$)`).
_DELIMITERS = " \t\r\n=:\"'"

_ENTROPY = Base64HighEntropyString()
_RANDOM_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])")


@dataclass(frozen=True)
class Span:
    """Characters `start:end` of a text are a secret of `kind` ("" when the text around
    it says what it is: `password=…`, a declared pattern, a literal value). A `weak`
    finding (a random-looking token) names the span only if no other rule found it."""

    start: int
    end: int
    kind: str = ""
    weak: bool = False


@dataclass(frozen=True)
class Rule:
    """A pattern for one kind of secret.

    The secret is the first of `groups` (names or numbers) that matched something, else
    the whole match less the delimiters some patterns take with it. `token`: the span
    grows to the token it is part of. `check` must accept the secret's text. `gate`, a
    cheap test of the whole text, skips the pattern where it can't match. A `weak`
    rule's kind names a span only when no other rule found it."""

    kind: str
    pattern: re.Pattern[str]
    groups: tuple[str | int, ...] = ()
    token: bool = True
    check: Callable[[str], bool] | None = None
    gate: Callable[[str], bool] | None = None
    weak: bool = False

    def spans(self, text: str) -> Iterator[Span]:
        if self.gate is not None and not self.gate(text):
            return
        for match in self.pattern.finditer(text):
            start, end = self._secret(match)
            if start >= end or (self.check is not None and not self.check(text[start:end])):
                continue
            if self.token:
                while start > 0 and text[start - 1] in _TOKEN_HEAD:
                    start -= 1
                tail = _TOKEN_TAIL.match(text, end)
                end = tail.end() if tail is not None else end
            yield Span(start, end, self.kind, self.weak)

    def _secret(self, match: re.Match[str]) -> tuple[int, int]:
        for group in self.groups:
            if match.group(group):
                return match.span(group)
        start, end = match.span()
        while start < end and match.string[start] in _DELIMITERS:
            start += 1
        while end > start and match.string[end - 1] in _DELIMITERS:
            end -= 1
        return start, end


def kind_of(secret_type: str) -> str:
    """A detect-secrets secret type as a mask label: `GitHub Token` → `github_token`."""
    return re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")


@functools.cache
def provider_rules() -> tuple[Rule, ...]:
    """detect-secrets' regex plugins, the formats it lacks, and random tokens."""
    rules: list[Rule] = []
    plugins: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin in sorted(plugins.items()):
        if secret_type in NOT_SECRETS or not issubclass(plugin, RegexBasedDetector):
            continue
        # A class attribute on every regex plugin (declared as an abstract property).
        declared: object = plugin.denylist
        denylist = tuple(cast(Iterable[re.Pattern[str]], declared))
        if plugin is PrivateKeyDetector:
            rules += [_private_key_block(kind_of(secret_type), p.pattern) for p in denylist]
        else:
            # A plugin's groups hold the secret (`://user:(password)@`) or a prefix of
            # it (`(ghp|gho|…)_…`, which the token's growth completes).
            rules += [
                Rule(kind_of(secret_type), p, groups=tuple(range(1, p.groups + 1)))
                for p in denylist
            ]
    rules += [Rule(kind, re.compile(pattern)) for kind, pattern in GAPS]
    rules.append(Rule(kind_of(_ENTROPY.secret_type), _RANDOM_TOKEN, check=_random, weak=True))
    return tuple(rules)


def _private_key_block(kind: str, header: str) -> Rule:
    """The whole key a PEM (or PuTTY) header starts, up to its end line, or to the end of
    the text when the end line is missing."""
    if header.startswith("BEGIN "):
        label = re.escape(header.removeprefix("BEGIN "))
        pattern = rf"-*BEGIN {label}-*[\s\S]*?(?:-+END {label}-+|\Z)"
    else:
        pattern = rf"{re.escape(header)}[\s\S]*?(?:Private-MAC:[ \t]*\S+|\Z)"
    return Rule(kind, re.compile(pattern), token=False)


def _random(candidate: str) -> bool:
    """Random-looking: letters of both cases and digits, and base64 entropy above
    detect-secrets' limit (hex digests and UUIDs are not: a single case)."""
    return (
        any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and any(c.isdigit() for c in candidate)
        and _ENTROPY.calculate_shannon_entropy(candidate) > _ENTROPY.entropy_limit
    )


def keyword_names() -> tuple[str, ...]:
    """detect-secrets' keyword plugin's names (`api_?key` → `apikey`, …)."""
    return tuple(re.sub(r"[^\w]|_", "", word) for word in DENYLIST)


# After a name: `=`, `:`, `:=`, `=>`, `->`, or in prose `is`, `was`, `is now`, `is:`.
_ASSIGN = r"(?:\s*(?:[:=]{1,2}>?|->)\s*|\s+(?:is|was|are)(?:\s+(?:now|still))?\s*:?\s+)"
# Atomic: a scheme word once read is never taken back as the secret itself.
_SCHEME = r"(?>(?:(?:bearer|basic|token|digest)\s+)?)"
# A value written without quotes ends at one of these, or at the end of the text; what
# ends a sentence (`the password is hunter2.`) is not part of it.
_END = r"\s\"',;&}\]\\)>"
_BARE = rf"[^{_END}]+?(?=[.!?:]*(?:[{_END}]|$))"


def keyword_rule(names: Sequence[str], mask: str) -> Rule | None:
    """A sensitive name and the value after it (see the module docstring); a value
    already masked (it starts with `mask` less its closing bracket) is left alone."""
    alternatives = sorted(
        {r"[\s_.-]?".join(re.escape(char) for char in name) for name in names if name},
        key=len,
        reverse=True,
    )
    if not alternatives:
        return None
    masked = re.escape(mask.removesuffix("]"))
    pattern = (
        rf"(?i)(?:{'|'.join(alternatives)})"
        r"(?:\\?[\"'])?\]?"  # the name's closing quote (JSON, a repr, escaped JSON)
        rf"{_ASSIGN}{_SCHEME}"
        rf"(?:(?P<q>\\?[\"'])(?!{masked})(?P<quoted>(?:(?!(?P=q))[^\r\n])+)(?P=q)"
        rf"|(?!{masked})(?P<bare>{_BARE}))"
    )
    return Rule(
        "",
        re.compile(pattern),
        groups=("quoted", "bare"),
        token=False,
        gate=functools.partial(_mentions, frozenset(names)),
    )


def _mentions(names: frozenset[str], text: str) -> bool:
    """Does `text` hold one of `names`, separators between its letters ignored?"""
    squeezed = _SEPARATORS.sub("", text.lower())
    return any(name in squeezed for name in names)


_SEPARATORS = re.compile(r"[\s_.-]+")
# Every detector but the email one needs seven digits, a few characters apart at most:
# a text without them has no card, IBAN, national id or phone number.
_DIGITS = re.compile(r"\d(?:\D{0,3}\d){6}")


def pii_spans(text: str, kinds: Collection[str]) -> list[Span]:
    """Personal data of `kinds` (`DETECTORS` names: card, iban, national_id, …) in the
    normalised `text`."""
    if "email" not in kinds and _DIGITS.search(text) is None:
        return []
    findings = [finding for kind in kinds for finding in DETECTORS[kind](text)]
    return [Span(f.start, f.end, f.kind) for f in non_overlapping(findings)]


def scan(text: str, rules: Sequence[Rule], pii: Collection[str] = ()) -> list[Span]:
    """Every secret `rules` and the `pii` detectors find in `text`, as merged spans of
    `text` itself (the rules see it normalised)."""
    view = normalized(text)
    found = [span for rule in rules for span in rule.spans(view.text)]
    if pii:
        found += pii_spans(view.text, pii)
    if view.starts is not None:
        found = [Span(*view.span(s.start, s.end), s.kind, s.weak) for s in found]
    return merged(found)


def merged(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans as one, named by the first strong finding that names one (a
    weak finding only if all of them are weak)."""
    result: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if not (result and span.start < result[-1].end):
            result.append(span)
            continue
        last = result[-1]
        if last.weak != span.weak:
            kind, weak = (last.kind, False) if span.weak else (span.kind, False)
        else:
            kind, weak = last.kind or span.kind, last.weak
        result[-1] = Span(last.start, max(last.end, span.end), kind, weak)
    return result
