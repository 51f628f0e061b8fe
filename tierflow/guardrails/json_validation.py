"""JSON parsing and JSON Schema validation shared by the guards.

The schema guards report *every* failing field, each as `path: problem` with a path a model can find
in its own output (`items[0].quantity`), because a model fixes a list of specific
problems far better than one generic "invalid". jsonschema loads with the first
validator (`make_validator`), not with a guard that validates a pydantic model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tierflow.guardrails.reasons import clip

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

# Models often wrap JSON in a Markdown fence; the fence is not part of the answer.
FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)

_MAX_ERRORS = 50  # a reason longer than this helps no model
_MAX_VALUE = 60


def unfence(candidate: str) -> tuple[str, bool]:
    """The candidate without a surrounding Markdown code fence, and whether it had one."""
    fenced = FENCE.match(candidate)
    return (fenced["body"], True) if fenced else (candidate, False)


class NotJson(ValueError):
    """The text is not one JSON value; the message says where it breaks."""


def parse_json(text: str) -> Any:
    """The JSON value in `text`, or `NotJson`. Deeply nested or huge-number input is
    refused too (Python raises RecursionError / ValueError for those)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise NotJson(f"not valid JSON ({error.msg} at {where})") from error
    except (ValueError, RecursionError) as error:
        raise NotJson(f"not valid JSON ({type(error).__name__})") from error


def is_json(text: str) -> bool:
    """Whether `text` is one JSON value (a repair must not break a JSON answer)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def field_path(parts: Iterable[str | int], *, root: str = "(root)") -> str:
    """`("items", 0, "quantity")` → `items[0].quantity`; the empty path is `root`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or root


def child_path(parts: Sequence[str | int], name: str) -> str:
    return field_path([*parts, name])


def make_validator(schema: dict[str, Any]) -> Validator:
    """A validator for `schema` in the draft its `$schema` names (2020-12 by default),
    with format checking. An invalid schema is a `ValueError` naming the problem."""
    from jsonschema import FormatChecker
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"invalid JSON Schema: {error.message}") from error
    return cls(schema, format_checker=FormatChecker())


def schema_errors(validator: Validator, instance: Any) -> list[str]:
    """Every failing field of `instance`, as `path: problem`, in a stable order."""
    problems: list[str] = []
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        for problem in _describe(error):
            if problem not in problems:
                problems.append(problem)
    if len(problems) > _MAX_ERRORS:
        hidden = len(problems) - _MAX_ERRORS
        problems = [*problems[:_MAX_ERRORS], f"… and {hidden} more"]
    return problems


def _describe(error: ValidationError) -> list[str]:
    path = list(error.absolute_path)
    where = field_path(path)
    instance, schema = error.instance, error.schema
    if error.validator == "required" and isinstance(instance, dict):
        assert isinstance(schema, Mapping)
        missing = [name for name in schema.get("required", []) if name not in instance]
        return [f"{child_path(path, name)}: required field is missing" for name in missing]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        assert isinstance(schema, Mapping)
        known = set(schema.get("properties", {}))
        allowed = ", ".join(sorted(known)) or "none"
        if not schema.get("patternProperties"):
            return [
                f"{child_path(path, name)}: unexpected field (allowed: {allowed})"
                for name in instance
                if name not in known
            ]
    if error.validator == "type":
        return [f"{where}: expected {_types(error.validator_value)}, got {_json_type(instance)}"]
    if error.validator == "enum" and isinstance(error.validator_value, list):
        options = ", ".join(_short(v) for v in error.validator_value)
        return [f"{where}: {_short(instance)} is not one of {options}"]
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Name the alternatives' problems once, not the whole instance.
        inner = sorted({_describe_leaf(e) for e in error.context})
        return [f"{where}: matches none of the allowed shapes ({'; '.join(inner[:4])})"]
    return [f"{where}: {_message(error)}"]


def _describe_leaf(error: ValidationError) -> str:
    return f"{field_path(list(error.absolute_path))}: {_message(error)}"


def _message(error: ValidationError) -> str:
    # jsonschema puts repr(instance) into its messages; a large one drowns the point.
    text = error.message
    rendered = repr(error.instance)
    if len(rendered) > _MAX_VALUE and rendered in text:
        text = text.replace(rendered, _short(error.instance))
    return text


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, _MAX_VALUE)


def _types(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(str(t) for t in expected)
    return str(expected)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
