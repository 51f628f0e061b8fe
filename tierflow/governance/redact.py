"""Redaction: secrets are masked before anything is stored.

Two declarations find them. *Secret patterns* are regular expressions for values that
are secrets wherever they appear (API keys such as `sk-…`, bearer tokens,
`password=…`); a pattern with a group named `secret` masks only that group, so
`Authorization: Bearer [REDACTED]` still says what was there. *Sensitive names* are
argument or field names whose value is a secret whatever it looks like (`password`,
`api_key`, `client_secret`, …); a name matches when its letters and digits, lower-cased,
end with a declared name (`db_password` → `dbpassword` ends with `password`), so
`max_tokens` is not `token`.

`Redactor.redact` walks what it is given — strings, mappings, sequences, pydantic models
(LangChain messages among them), and strings that hold JSON — and returns a masked copy;
the input is never changed. Audit rows and recorded side effects are redacted by their
writers; `RedactingSerializer` does it for checkpoints and `RedactingLogFilter` for
log records; `redact_text` is there for anything else (the runs table's request,
answer and error).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel, Field, PrivateAttr, field_validator

from tierflow.spec_model import SpecModel

MASK = "[REDACTED]"
_VALUE = r"[^\s\"',;&}\]]+"  # a value written after `name=` or `"name": "`
# Atomic: a scheme word once read is never taken back as the secret itself.
_SCHEME = r"(?>(?:(?:bearer|basic|token|digest)\s+)?)"  # `Authorization: Bearer <secret>`

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI and OpenAI-style API keys (sk-…, sk-proj-…)
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",  # HTTP bearer tokens
    r"(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{12,}={0,2})",  # HTTP basic credentials
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"(?i)://[^\s:/@]+:(?P<secret>[^\s@/]+)@",  # a password inside a URL
)

DEFAULT_SENSITIVE_NAMES: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "authorization",
    "cookie",
    "sessionid",
    "cardnumber",
    "cvv",
)


def normalised_name(name: str) -> str:
    """`API-Key` → `apikey`: how names are compared."""
    return "".join(char for char in name.lower() if char.isalnum())


class Redactor(SpecModel):
    """What counts as a secret. Declared with the agent; JSON-serialisable.

    `values` are literal secrets known at run time (a key read from the environment);
    they are masked wherever they appear and never serialised or shown."""

    patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    sensitive_names: tuple[str, ...] = DEFAULT_SENSITIVE_NAMES
    mask: str = MASK
    values: frozenset[str] = Field(default=frozenset(), exclude=True, repr=False)

    _compiled: tuple[re.Pattern[str], ...] = PrivateAttr(default=())
    _names: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        return patterns

    @field_validator("values")
    @classmethod
    def _values_not_empty(cls, values: frozenset[str]) -> frozenset[str]:
        # An empty literal would "match" between every two characters.
        return frozenset(value for value in values if value)

    def model_post_init(self, context: Any, /) -> None:
        literals = [re.escape(value) for value in sorted(self.values, key=len, reverse=True)]
        names = tuple(normalised_name(name) for name in self.sensitive_names)
        # `password=hunter2`, `"api_key": "…"`, `Authorization: Token …` in free text; a
        # value already masked (by a pattern above) is left alone.
        unmasked = f"(?!{re.escape(self.mask)})"
        named = [
            rf"(?i)(?<![A-Za-z0-9]){re.escape(name)}[\"']?\s*[:=]\s*[\"']?"
            rf"{_SCHEME}{unmasked}(?P<secret>{_VALUE})"
            for name in self.sensitive_names
            if name
        ]
        compiled = [re.compile(p) for p in (*literals, *self.patterns, *named)]
        self._compiled = tuple(compiled)
        self._names = tuple(name for name in names if name)

    def with_values(self, *values: str) -> Redactor:
        """This redactor, also masking the literal `values` (e.g. keys read at run time)."""
        return Redactor(
            patterns=self.patterns,
            sensitive_names=self.sensitive_names,
            mask=self.mask,
            values=self.values | set(values),
        )

    def is_sensitive(self, name: str) -> bool:
        normal = normalised_name(name)
        return any(normal.endswith(suffix) for suffix in self._names)

    def redact_text(self, text: str) -> str:
        for pattern in self._compiled:
            text = pattern.sub(self._masker, text)
        return text

    def _masker(self, match: re.Match[str]) -> str:
        if "secret" in match.re.groupindex and match.group("secret") is not None:
            start, end = match.span("secret")
            whole_start = match.start()
            text = match.group(0)
            return text[: start - whole_start] + self.mask + text[end - whole_start :]
        return self.mask

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every secret masked (the input is left as it was)."""
        if isinstance(value, str):
            return self._redact_string(value)
        if isinstance(value, Mapping):
            return {
                key: self._masked_value(item)
                if isinstance(key, str) and self.is_sensitive(key)
                else self.redact(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact(item) for item in value)
        if isinstance(value, BaseModel):
            return self._redact_model(value)
        return value

    def redact_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """A tool call's arguments with sensitive names and secret values masked."""
        redacted: dict[str, Any] = self.redact(dict(arguments))
        return redacted

    def _masked_value(self, item: Any) -> Any:
        return None if item is None else self.mask

    def _redact_string(self, text: str) -> str:
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:
                masked = self.redact(parsed)
                if masked != parsed:
                    text = json.dumps(masked, ensure_ascii=False)
        return self.redact_text(text)

    def _redact_model(self, model: BaseModel) -> BaseModel:
        changed: dict[str, Any] = {}
        for name in type(model).model_fields:
            current = getattr(model, name, None)
            masked = (
                self._masked_value(current) if self.is_sensitive(name) else self.redact(current)
            )
            if masked is not current and masked != current:
                changed[name] = masked
        return model.model_copy(update=changed) if changed else model


class RedactingSerializer(JsonPlusSerializer):
    """LangGraph's serializer, masking secrets in every value before it is written.

    Give it to a checkpoint saver (`SqliteStore(conn, path, serde=...)`, any LangGraph
    `BaseCheckpointSaver(serde=...)`): checkpoints and pending writes never hold a
    secret. What a resumed run reads back is the masked value — the point of it. It
    subclasses `JsonPlusSerializer` (rather than wrapping one) so LangGraph's msgpack
    allow-list still applies to it (`BaseCheckpointSaver.with_allowlist`)."""

    def __init__(self, redactor: Redactor | None = None, **serializer_options: Any) -> None:
        super().__init__(**serializer_options)
        self.redactor = redactor or Redactor()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return super().dumps_typed(self.redactor.redact(obj))


class RedactingLogFilter(logging.Filter):
    """A logging filter that masks secrets in every record's message before any handler
    formats it: `handler.addFilter(RedactingLogFilter(redactor))`."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact_text(record.getMessage())
        record.args = None
        return True
