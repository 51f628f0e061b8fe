"""A tool function's parameters: which the model fills (its arguments, described by a
JSON schema) and which tierflow fills (the call's `ToolContext`, a run resource, a
transaction), and checking what the model sent against the schema."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    PydanticUserError,
    ValidationError,
    create_model,
)
from pydantic.errors import PydanticInvalidForJsonSchema
from pydantic.fields import FieldInfo

from tierflow.errors import SpecError

if TYPE_CHECKING:  # jsonschema loads with the first JSON-schema tool, not with every agent
    from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about the call it serves. Declare a parameter of this type
    to receive it; it is not part of the schema the model sees.

    `idempotency_key` is the same on every attempt of one call, in every process.
    `attempt` is 1 on the first attempt; above 1 an earlier attempt of this call may
    have done its work without tierflow learning the outcome (a crash, a timeout, a
    transient error), so a tool with a side effect must let its target refuse to do it
    twice (docs/tools.md)."""

    thread_id: str
    step: int
    call_id: str
    idempotency_key: str
    attempt: int = 1

    @property
    def is_retry(self) -> bool:
        """Whether an earlier attempt of this call may already have had its effect."""
        return self.attempt > 1


@dataclass(frozen=True)
class Needs:
    """`Annotated[T, Needs("name")]` on a tool parameter: the run resource `name`
    (declared in `Agent(resources=...)`), given by the run, never by the model."""

    resource: str


class Transaction:
    """Annotate a tool parameter with this type to receive the open transaction of a
    tool declared `once=SameTransaction(...)`: its writes and tierflow's record of the
    call commit together. It has `execute(sql, params)` (see tierflow.tools.once)."""

    def execute(self, sql: str, params: Any = (), /) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError


class ArgumentsInvalid(ValueError):
    """What the model sent does not fit the tool's schema; the text says how, per
    argument, in words a model can act on."""


@dataclass(frozen=True)
class Injected:
    """The parameters of a tool function that tierflow fills, by kind."""

    context: str | None = None
    transaction: str | None = None
    needs: dict[str, str] = field(default_factory=dict)  # parameter → resource

    def names(self) -> frozenset[str]:
        named = {self.context, self.transaction, *self.needs}
        return frozenset(name for name in named if name is not None)


def hints_of(function: Callable[..., Any], where: str) -> dict[str, Any]:
    """The function's type hints, `Annotated` metadata kept (argument descriptions)."""
    try:
        return get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as error:
        raise SpecError(where, f"type hints can't be resolved: {error}") from error


def injected_kind(hint: Any) -> tuple[str, str | None] | None:
    """("context" | "transaction" | "needs", resource) when tierflow fills a parameter
    annotated `hint`; None when the model does."""
    base, metadata = (get_args(hint)[0], get_args(hint)[1:]) if _annotated(hint) else (hint, ())
    need = next((m for m in metadata if isinstance(m, Needs)), None)
    if need is not None:
        return "needs", need.resource
    if base is ToolContext:
        return "context", None
    if base is Transaction:
        return "transaction", None
    return None


def injected_of(kinds: Mapping[str, tuple[str, str | None]], where: str) -> Injected:
    """The parameters tierflow fills, from each one's kind (`injected_kind`); a call has
    one context and one transaction, so a second parameter of either is a `SpecError`."""
    for kind in ("context", "transaction"):
        named = [name for name, (filled, _) in kinds.items() if filled == kind]
        if len(named) > 1:
            raise SpecError(f"{where}.{named[1]}", f"a second {kind} parameter ({named[0]} is one)")
    return Injected(
        context=next((name for name, kind in kinds.items() if kind[0] == "context"), None),
        transaction=next((name for name, kind in kinds.items() if kind[0] == "transaction"), None),
        needs={name: str(kind[1]) for name, kind in kinds.items() if kind[0] == "needs"},
    )


def _annotated(hint: Any) -> bool:
    return get_origin(hint) is Annotated


def _described(hint: Any) -> Any:
    """`Annotated[T, "text"]` as `Annotated[T, Field(description="text")]`: a plain
    string is how LangChain users write an argument's description."""
    if not _annotated(hint):
        return hint
    base, *metadata = get_args(hint)
    if any(isinstance(m, FieldInfo) for m in metadata):
        return hint
    texts = [m for m in metadata if isinstance(m, str)]
    if not texts:
        return hint
    return Annotated[base, Field(description=texts[0])]


def signature_schema(
    function: Callable[..., Any], tool_name: str
) -> tuple[type[BaseModel], Injected]:
    """The pydantic model of the arguments the model fills, and the parameters tierflow
    fills, read from the function's signature."""
    where = f"tools.{tool_name}"
    hints = hints_of(function, where)
    fields: dict[str, Any] = {}
    filled: dict[str, tuple[str, str | None]] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SpecError(
                f"{where}.{parameter.name}",
                "*args/**kwargs can't be described to a model; declare each argument, "
                "or build the tool with Tool.from_schema",
            )
        hint = hints.get(parameter.name)
        if hint is None:
            raise SpecError(f"{where}.{parameter.name}", "has no type annotation")
        kind = injected_kind(hint)
        if kind is not None:
            filled[parameter.name] = kind
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (_described(hint), default)
    try:
        schema: type[BaseModel] = create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        schema.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError) as e:
        raise SpecError(where, f"arguments can't be described by a JSON schema: {e}") from e
    return schema, injected_of(filled, where)


def checked_json_schema(parameters: Mapping[str, Any], tool_name: str) -> Draft202012Validator:
    """A validator of the given JSON schema, which must describe an object."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    where = f"tools.{tool_name}.parameters"
    try:  # what the validator checks must be what the model is sent, as JSON
        same = json.loads(json.dumps(parameters, allow_nan=False)) == parameters
    except (TypeError, ValueError):
        same = False
    if not same:
        raise SpecError(where, "is not JSON (text keys; objects, lists, text, numbers)")
    try:
        Draft202012Validator.check_schema(dict(parameters))
    except SchemaError as error:
        raise SpecError(where, f"is not a valid JSON schema: {error.message}") from None
    if parameters.get("type") != "object":
        raise SpecError(where, 'must describe an object ("type": "object")')
    _refs_resolve(parameters, where)
    return Draft202012Validator(dict(parameters))


_VALUES = frozenset({"enum", "const", "default", "examples"})  # data, not schemas


def _refs_resolve(schema: Mapping[str, Any], where: str) -> None:
    """Every `$ref` of `schema` names a part of it (or a JSON Schema meta-schema): one
    that doesn't would fail the first call that reaches it, not the declaration."""
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    root = DRAFT202012.create_resource(dict(schema))
    base = root.id() or ""
    resolver = REGISTRY.with_resource(base, root).crawl().resolver(base)

    def walk(node: Any, resolver: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, resolver)
        if not isinstance(node, dict):
            return
        if isinstance(node.get("$id"), str) and node is not schema:
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        if isinstance(node.get("$ref"), str):
            try:
                resolver.lookup(node["$ref"])
            except Unresolvable:
                raise SpecError(
                    where,
                    f"$ref {node['$ref']!r} resolves to nothing (a $ref names a part of this "
                    "schema; remote schemas are not fetched)",
                ) from None
        for key, value in node.items():
            if key not in _VALUES:
                walk(value, resolver)

    walk(schema, resolver)


def validated_json(validator: Draft202012Validator, arguments: Mapping[str, Any]) -> None:
    """Raise `ArgumentsInvalid` naming every argument that breaks the schema."""
    errors = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.path))
    if errors:
        parts = [f"{'.'.join(map(str, e.path)) or '(arguments)'}: {e.message}" for e in errors]
        raise ArgumentsInvalid("; ".join(parts))


def validated_model(schema: type[BaseModel], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The model's arguments validated by the pydantic schema, as keyword arguments."""
    try:
        parsed = schema.model_validate(dict(arguments))
    except ValidationError as error:
        raise ArgumentsInvalid(describe_validation_error(error)) from None
    return {name: getattr(parsed, name) for name in type(parsed).model_fields}


def describe_validation_error(error: ValidationError) -> str:
    """One line per failing argument, e.g. `order_id: Input should be a valid integer`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(arguments)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
