"""Redaction: secrets and personal data are masked before anything leaves the process.

What counts as a secret (`secrets.py` has the rules):

- *known formats*, from detect-secrets' maintained ruleset (`sk_live_…`, `AIza…`,
  `github_pat_…`, AWS keys, JWTs, PEM private keys, random-looking tokens, …);
- *sensitive names*: argument or field names whose value is a secret whatever it looks
  like (`password`, `api_key`, `client_secret`, …, and detect-secrets' keyword list); a
  name matches when its letters and digits, lower-cased, end with a declared name
  (`db_password` → `dbpassword` ends with `password`), so `max_tokens` is not `token`.
  In text the same names are found before their value however it is written:
  `api_key=…`, `x-api-key: …`, YAML, a repr, `the password is …`;
- declared *patterns* (regular expressions; a group named `secret` masks only that
  group, so `Authorization: Bearer [REDACTED]` still says what was there);
- *personal data* the policy names (`pii`: card numbers, IBANs, national ids by
  default), found by the PII guard's detectors;
- literal `values` known at run time.

A mask says what it replaced when the text around it doesn't: `[REDACTED:github_token]`,
`[REDACTED:card]`; after a name, a scheme or a declared pattern it is `[REDACTED]`.

`Redactor.redact` walks what it is given — strings (and JSON inside them), mappings,
lists, tuples, sets, dataclasses (LangGraph's `Interrupt`, `Command`), `Send`, pydantic
models (LangChain messages among them) — and returns a masked copy; the input is never
changed. Where it is applied: `redact_checkpoints` (checkpoints and pending writes, the
values a saver keeps outside its serializer too), the audit, side-effect and approval
writers, the runner (the runs table), `RedactingLogFilter` (log records) and
`tracing.tracer_callbacks` (LangSmith traces).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send
from pydantic import BaseModel, Field, PrivateAttr, field_validator

from tierflow.foundation.spec import SpecModel
from tierflow.governance.secrets import Rule, keyword_names, keyword_rule, provider_rules, scan
from tierflow.guardrails.normalize import normalize
from tierflow.guardrails.pii.detectors import DETECTORS

MASK = "[REDACTED]"

# Declared by default: what the maintained ruleset doesn't know. detect-secrets knows
# OpenAI keys only in their legacy form (`…T3BlbkFJ…`), and HTTP credentials are a
# scheme word and a value, not a format.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI and Anthropic style keys (sk-…, sk-proj-…)
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",  # HTTP bearer tokens
    r"(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{12,}={0,2})",  # HTTP basic credentials
)

_TIERFLOW_NAMES = (
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
    "credentials",
    "cardnumber",
    "cvv",
)
DEFAULT_SENSITIVE_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys((*_TIERFLOW_NAMES, *keyword_names()))
)
DEFAULT_PII: tuple[str, ...] = ("card", "iban", "national_id")

_CACHE_SIZE = 16384  # texts (and names) remembered by a `Masker`

SaverT = TypeVar("SaverT", bound=BaseCheckpointSaver[Any])


def normalised_name(name: str) -> str:
    """`API-Key` → `apikey`: how names are compared."""
    return "".join(char for char in name.lower() if char.isalnum())


class Redactor(SpecModel):
    """What counts as a secret. Declared with the agent; JSON-serialisable.

    `known_secrets` turns the maintained ruleset on (detect-secrets' formats, the ones it
    lacks, random-looking tokens). `pii` names the personal data masked in storage
    (`tierflow.guardrails.pii.detectors.DETECTORS`: email, card, iban, national_id,
    phone). `values` are literal secrets known at run time (a key read from the
    environment); they are masked wherever they appear and never serialised or shown."""

    patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    sensitive_names: tuple[str, ...] = DEFAULT_SENSITIVE_NAMES
    known_secrets: bool = True
    pii: tuple[str, ...] = DEFAULT_PII
    mask: str = MASK
    values: frozenset[str] = Field(default=frozenset(), exclude=True, repr=False)

    _masker: Masker = PrivateAttr()

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        return patterns

    @field_validator("pii")
    @classmethod
    def _pii_known(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(kinds) - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown personal data {unknown}; known: {sorted(DETECTORS)}")
        return tuple(sorted(set(kinds)))

    @field_validator("values")
    @classmethod
    def _values_not_empty(cls, values: frozenset[str]) -> frozenset[str]:
        # An empty literal would "match" between every two characters.
        return frozenset(value for value in values if value)

    def model_post_init(self, context: Any, /) -> None:
        literals = sorted({normalize(value) for value in self.values}, key=len, reverse=True)
        rules = [Rule("", re.compile(re.escape(value)), token=False) for value in literals]
        for pattern in self.patterns:
            compiled = re.compile(pattern)
            groups: tuple[str, ...] = ("secret",) if "secret" in compiled.groupindex else ()
            rules.append(Rule("", compiled, groups=groups, token=False))
        if self.known_secrets:
            rules += provider_rules()
        names = tuple(name for name in map(normalised_name, self.sensitive_names) if name)
        keywords = keyword_rule(names, self.mask)
        if keywords is not None:
            rules.append(keywords)
        self._masker = Masker(tuple(rules), names, self.pii, self.mask)

    def with_values(self, *values: str) -> Redactor:
        """This redactor, also masking the literal `values` (e.g. keys read at run time)."""
        return Redactor(
            patterns=self.patterns,
            sensitive_names=self.sensitive_names,
            known_secrets=self.known_secrets,
            pii=self.pii,
            mask=self.mask,
            values=self.values | set(values),
        )

    def is_sensitive(self, name: str) -> bool:
        return self._masker.is_sensitive(name)

    def mask_for(self, kind: str) -> str:
        """The mask for a secret of `kind`: `[REDACTED:card]`; `[REDACTED]` for none."""
        return self._masker.mask_for(kind)

    def redact_text(self, text: str) -> str:
        """`text` with every secret masked; a text that is JSON is masked as data (its
        sensitive names mask whole values) and written back as JSON."""
        return self._masker.text(text)

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every secret masked (the input is left as it was)."""
        return self._masker.value(value)

    def redact_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """A tool call's arguments with sensitive names and secret values masked."""
        redacted: dict[str, Any] = self._masker.value(dict(arguments))
        return redacted


class Masker:
    """A `Redactor` at work: its rules applied to values, walked. Masked texts and
    names judged are remembered: a checkpoint or a trace holds the same messages again
    and again (and the process holds them in memory anyway)."""

    def __init__(
        self, rules: tuple[Rule, ...], names: tuple[str, ...], pii: tuple[str, ...], mask: str
    ) -> None:
        self.rules = rules
        self.names = names
        self.pii = pii
        self.mask = mask
        self._masks = re.compile(
            re.escape(mask.removesuffix("]")) + r"(?::\w+)?" + (r"\]" if mask.endswith("]") else "")
        )
        self._texts: dict[str, str] = {}
        self._sensitive: dict[str, bool] = {}

    def is_sensitive(self, name: str) -> bool:
        known = self._sensitive.get(name)
        if known is None:
            if len(self._sensitive) >= _CACHE_SIZE:
                self._sensitive.clear()
            known = self._sensitive[name] = normalised_name(name).endswith(self.names)
        return known

    def mask_for(self, kind: str) -> str:
        if not kind:
            return self.mask
        if self.mask.endswith("]"):
            return f"{self.mask[:-1]}:{kind}]"
        return f"{self.mask}:{kind}"

    def text(self, text: str) -> str:
        masked = self._texts.get(text)
        if masked is None:
            if len(self._texts) >= _CACHE_SIZE:
                self._texts.clear()
            masked = self._texts[text] = self._masked_text(text)
        return masked

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, int | float | bytes):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: self._item(key, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, tuple):
            items = [self.value(item) for item in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        if isinstance(value, set | frozenset):
            return type(value)(self.value(item) for item in value)
        if isinstance(value, BaseModel):
            return self._model(value)
        if isinstance(value, Send):
            return Send(value.node, self.value(value.arg))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._dataclass(value)
        return value

    def _masked_text(self, text: str) -> str:
        structured = self._json(text)
        if structured is not None:
            return structured
        # A mask already there is nothing to find: its kind label (`stripe_access_key`)
        # must not read as a sensitive name before a value. Same length, so the spans
        # found in the blanked text are the original's.
        blanked = self._masks.sub(lambda found: "#" * len(found.group()), text)
        spans = scan(blanked, self.rules, self.pii)
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for span in spans:
            parts += [text[last : span.start], self.mask_for(span.kind)]
            last = span.end
        parts.append(text[last:])
        return "".join(parts)

    def _item(self, name: Any, item: Any) -> Any:
        """The value under `name`: masked whole if the name is sensitive."""
        if isinstance(name, str) and self.is_sensitive(name):
            return None if item is None else self.mask
        return self.value(item)

    def _json(self, text: str) -> str | None:
        """`text` masked as JSON data, or None if it isn't JSON (an object or a list)."""
        stripped = text.strip()
        if not (stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]")):
            return None
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return None
        masked = self.value(parsed)
        return text if masked == parsed else json.dumps(masked, ensure_ascii=False)

    def _model(self, model: BaseModel) -> BaseModel:
        changed: dict[str, Any] = {}
        for name in [*type(model).model_fields, *(model.model_extra or {})]:
            current = getattr(model, name, None)
            masked = self._item(name, current)
            if masked is not current and masked != current:
                changed[name] = masked
        return model.model_copy(update=changed) if changed else model

    def _dataclass(self, value: Any) -> Any:
        changed = {}
        for field in dataclasses.fields(value):
            current = getattr(value, field.name)
            masked = self._item(field.name, current)
            if masked is not current and masked != current:
                changed[field.name] = masked
        if not changed:
            return value
        masked_copy = copy.copy(value)
        for name, item in changed.items():  # frozen and slotted dataclasses too
            object.__setattr__(masked_copy, name, item)
        return masked_copy


class RedactingSerializer(JsonPlusSerializer):
    """LangGraph's serializer, masking secrets in every value before it is written.

    Give it to a checkpoint saver (`SqliteStore(conn, path, serde=...)`, any LangGraph
    `BaseCheckpointSaver(serde=...)`), or use `redact_checkpoints`, which also covers
    what a saver stores without its serializer. What a resumed run reads back is the
    masked value — the point of it. It subclasses `JsonPlusSerializer` (rather than
    wrapping one) so LangGraph's msgpack allow-list still applies to it
    (`BaseCheckpointSaver.with_allowlist`)."""

    def __init__(self, redactor: Redactor | None = None, **serializer_options: Any) -> None:
        super().__init__(**serializer_options)
        self.redactor = redactor or Redactor()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return super().dumps_typed(self.redactor.redact(obj))


def redact_checkpoints(saver: SaverT, redactor: Redactor) -> SaverT:
    """`saver`, storing only masked checkpoints: its serializer masks every value it
    serialises (channel values, pending writes — interrupts among them), and `put`
    masks, before the saver sees them, the metadata and the text channel values a
    saver may store without its serializer (LangGraph's `PostgresSaver` keeps `str`,
    `int`, `float` and `bool` values inline in its JSONB `checkpoint` column)."""
    if getattr(saver, "_tierflow_redactor", None) is redactor:
        return saver  # masked already: once is enough
    saver.serde = RedactingSerializer(redactor)
    put, aput = saver.put, saver.aput

    def masked(
        checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[Checkpoint, CheckpointMetadata]:
        values = checkpoint["channel_values"]
        texts = {k: redactor.redact_text(v) for k, v in values.items() if isinstance(v, str)}
        if texts:
            checkpoint = {**checkpoint, "channel_values": {**values, **texts}}
        return checkpoint, cast(CheckpointMetadata, redactor.redact(metadata))

    def masked_put(
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return put(config, *masked(checkpoint, metadata), new_versions)

    async def masked_aput(
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await aput(config, *masked(checkpoint, metadata), new_versions)

    object.__setattr__(saver, "put", masked_put)
    object.__setattr__(saver, "aput", masked_aput)
    object.__setattr__(saver, "_tierflow_redactor", redactor)
    return saver


class RedactingLogFilter(logging.Filter):
    """A logging filter that masks secrets in every record — its message, exception and
    stack — before any handler formats it: `handler.addFilter(RedactingLogFilter(r))`."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact_text(record.stack_info)
        return True
