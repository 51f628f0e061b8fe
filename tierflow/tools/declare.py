"""Tools: a function, a pydantic schema of its arguments, and how it may be run.

`@tool` derives the schema from the function's signature at declaration time, so a
tool whose arguments can't be described to a model fails when the agent is written,
not when the model first calls it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    PydanticUserError,
    create_model,
    model_validator,
)
from pydantic.errors import PydanticInvalidForJsonSchema
from typing_extensions import is_typeddict

from tierflow.errors import SpecError
from tierflow.foundation.spec import SpecModel
from tierflow.guardrails.base import Guardrail

ALL_ARGUMENTS = "*"


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about the call it serves. Declare a parameter of this type
    to receive it; it is not part of the schema the model sees."""

    thread_id: str
    step: int
    call_id: str
    idempotency_key: str


class Tool(SpecModel):
    """A declared tool. Build it with `@tool`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts
    description: str
    fn: Callable[..., Any]
    args_schema: type[BaseModel]
    context_param: str | None = None
    scope: str | None = None
    side_effects: bool = False
    timeout_s: float = Field(default=30.0, gt=0)
    # Checked before the tool runs: argument name (or "*" for all arguments as JSON) →
    # guardrail. A failing check blocks the call; its policy may fix or ask a human.
    guards: dict[str, Any] = Field(default_factory=dict)
    # Checked after the tool ran, before the model reads its result: a field of a JSON
    # object result (or "*" for the whole result) → guardrail. A failing check masks the
    # result (on_fail="fix"), holds it for a human ("interrupt") or withholds it.
    output_guards: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _guards_fit(self) -> Tool:
        for argument, guard in self.guards.items():
            if not isinstance(guard, Guardrail):
                raise ValueError(f"guards[{argument!r}] is not a guardrail")
            if argument != ALL_ARGUMENTS and argument not in self.args_schema.model_fields:
                raise ValueError(
                    f"guards[{argument!r}]: the tool has no such argument "
                    f"(arguments: {sorted(self.args_schema.model_fields)}; '*' for all)"
                )
        fields = _result_fields(self.fn)
        for key, guard in self.output_guards.items():
            if not isinstance(guard, Guardrail):
                raise ValueError(f"output_guards[{key!r}] is not a guardrail")
            if not key:
                raise ValueError("output_guards: name a field of the result, or '*' for all")
            if key != ALL_ARGUMENTS and fields is not None and key not in fields:
                raise ValueError(
                    f"output_guards[{key!r}]: the tool's result has no such field "
                    f"(fields: {sorted(fields)}; '*' for the whole result)"
                )
        return self

    @property
    def holds_results(self) -> bool:
        """Whether an output guard may hold this tool's result for a human."""
        return any(guard.on_fail == "interrupt" for guard in self.output_guards.values())

    def openai_schema(self) -> dict[str, Any]:
        """The tool as the OpenAI function-calling format describes it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args_schema.model_json_schema(),
            },
        }

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description (for `Agent.to_json`)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.args_schema.model_json_schema(),
            "scope": self.scope,
            "side_effects": self.side_effects,
            "timeout_s": self.timeout_s,
            "guards": {argument: guard.spec() for argument, guard in self.guards.items()},
            # only when declared, so the spec (and fingerprint) of other tools is unchanged
            **(
                {"output_guards": {k: g.spec() for k, g in self.output_guards.items()}}
                if self.output_guards
                else {}
            ),
        }

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    side_effects: bool = False,
    timeout_s: float = 30.0,
    guards: Mapping[str, Guardrail] | None = None,
    output_guards: Mapping[str, Guardrail] | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    side_effects: bool = False,
    timeout_s: float = 30.0,
    guards: Mapping[str, Guardrail] | None = None,
    output_guards: Mapping[str, Guardrail] | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a tool from a typed function; its docstring is the description.

    `guards` check its arguments before it runs; `output_guards` check its result
    before the model reads it (see `tierflow.nodes.output_guards`)."""

    def build(function: Callable[..., Any]) -> Tool:
        tool_name = name or function.__name__
        field = f"tools.{tool_name}"
        text = description or inspect.getdoc(function) or ""
        if not text.strip():
            raise SpecError(field, "needs a description (a docstring or description=...)")
        schema, context_param = _arguments_schema(function, tool_name)
        try:
            return Tool(
                name=tool_name,
                description=text.strip(),
                fn=function,
                args_schema=schema,
                context_param=context_param,
                scope=scope,
                side_effects=side_effects,
                timeout_s=timeout_s,
                guards=dict(guards or {}),
                output_guards=dict(output_guards or {}),
            )
        except SpecError as error:
            raise SpecError(f"{field}.{error.field.removeprefix('tool.')}", error.problem) from None

    return build if fn is None else build(fn)


def _arguments_schema(
    function: Callable[..., Any], tool_name: str
) -> tuple[type[BaseModel], str | None]:
    field = f"tools.{tool_name}"
    try:
        hints = get_type_hints(function)
    except (NameError, TypeError) as error:
        raise SpecError(field, f"type hints can't be resolved: {error}") from error
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SpecError(
                f"{field}.{parameter.name}",
                "*args/**kwargs can't be described to a model; declare each argument",
            )
        hint = hints.get(parameter.name)
        if hint is None:
            raise SpecError(f"{field}.{parameter.name}", "has no type annotation")
        if hint is ToolContext:
            context_param = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)
    try:
        schema: type[BaseModel] = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        schema.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError) as e:
        raise SpecError(field, f"arguments can't be described by a JSON schema: {e}") from e
    return schema, context_param


def _result_fields(function: Callable[..., Any]) -> frozenset[str] | None:
    """The keys of a tool's result when its return annotation is a TypedDict (the one
    kind of annotated result that reaches the model as a JSON object); None if unknown."""
    try:
        returned = get_type_hints(function).get("return")
    except (NameError, TypeError):
        return None
    return frozenset(get_type_hints(returned)) if is_typeddict(returned) else None
