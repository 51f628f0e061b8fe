"""Tools: a function, the JSON schema of its arguments, and how it may be run.

`@tool` derives the schema from the function's signature at declaration time, so a
tool whose arguments can't be described to a model fails when the agent is written,
not when the model first calls it. `Tool.from_schema` takes a JSON schema as given (the
function receives what the model sent, checked against it); `from_langchain` and
`mcp_tools` (tierflow.tools) build on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, get_type_hints, overload

from pydantic import BaseModel, Field, PrivateAttr, model_validator
from typing_extensions import is_typeddict

from tierflow.errors import SpecError
from tierflow.foundation.retry import RetryPolicy
from tierflow.foundation.spec import SpecModel
from tierflow.guardrails.base import Guardrail
from tierflow.tools.arguments import (
    Injected,
    checked_json_schema,
    hints_of,
    injected_kind,
    injected_of,
    signature_schema,
    validated_json,
    validated_model,
)
from tierflow.tools.once import Once, Reconcile, SameTransaction

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

ALL_ARGUMENTS = "*"


class Tool(SpecModel):
    """A declared tool. Build it with `@tool`, `Tool.from_schema`, `from_langchain` or
    `mcp_tools`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts
    description: str
    fn: Callable[..., Any]
    # The arguments the model fills: a pydantic model read from the function's
    # signature (`@tool`), or a JSON schema given as is (`from_schema`), whose whole
    # object the function receives as its `arguments_param`.
    args_schema: type[BaseModel] | None = None
    parameters: dict[str, Any] | None = None
    arguments_param: str | None = None
    # The parameters tierflow fills: the call's context, its transaction, run resources.
    injected: Injected = Field(default_factory=Injected)
    scope: str | None = None
    side_effects: bool = False
    # How a side-effecting call happens exactly once beyond its key (tierflow.tools.once).
    once: Reconcile | SameTransaction | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    # Transient failures retried (with or without a policy); None: the policy's, if any.
    retry: RetryPolicy | None = None
    # Checked before the tool runs: argument name (or "*" for all arguments as JSON) →
    # guardrail. A failing check blocks the call; its policy may fix or ask a human.
    guards: dict[str, Any] = Field(default_factory=dict)
    # Checked after the tool ran, before the model reads its result: a field of a JSON
    # object result (or "*" for the whole result) → guardrail. A failing check masks the
    # result (on_fail="fix"), holds it for a human ("interrupt") or withholds it.
    output_guards: dict[str, Any] = Field(default_factory=dict)
    _validator: Draft202012Validator | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fits(self) -> Tool:
        if (self.args_schema is None) == (self.parameters is None):
            raise ValueError("declare the arguments by args_schema or by parameters, not both")
        if self.parameters is not None:
            self._validator = checked_json_schema(self.parameters, self.name)
        if self.once is not None and not self.side_effects:
            raise ValueError("once=... is for a tool with side_effects=True")
        if isinstance(self.once, SameTransaction) and self.injected.transaction is None:
            raise ValueError("once=SameTransaction needs a parameter annotated `Transaction`")
        if isinstance(self.once, SameTransaction) and inspect.iscoroutinefunction(self.fn):
            raise ValueError("once=SameTransaction needs a sync function (its transaction is)")
        if self.injected.transaction is not None and not isinstance(self.once, SameTransaction):
            raise ValueError("a `Transaction` parameter needs once=SameTransaction(...)")
        self._guards_fit()
        return self

    def _guards_fit(self) -> None:
        names = self.argument_names()
        for argument, guard in self.guards.items():
            if not isinstance(guard, Guardrail):
                raise ValueError(f"guards[{argument!r}] is not a guardrail")
            if argument != ALL_ARGUMENTS and argument not in names:
                raise ValueError(
                    f"guards[{argument!r}]: the tool has no such argument "
                    f"(arguments: {sorted(names)}; '*' for all)"
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

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        function: Callable[..., Any],
        **declared: Any,
    ) -> Tool:
        """A tool whose arguments are described by a JSON schema, shown to the model
        exactly as given. `function`'s first parameter receives the arguments object the
        model sent (after checking it against the schema); its other parameters may ask
        for what tierflow fills (`ToolContext`, `Transaction`, `Needs`). `declared`:
        scope, side_effects, once, timeout_s, retry, guards, output_guards."""
        where = f"tools.{name}"
        if not description.strip():
            raise SpecError(where, "needs a description")
        try:
            positional = list(inspect.signature(function).parameters.values())
        except (ValueError, TypeError):
            raise SpecError(
                where, "the function's signature can't be read; wrap it in a def"
            ) from None
        hints = hints_of(function, where)
        if not positional or positional[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise SpecError(where, "the function's first parameter must take the arguments")
        filled: dict[str, tuple[str, str | None]] = {}
        for parameter in positional[1:]:
            kind = injected_kind(hints.get(parameter.name))
            if kind is None:
                raise SpecError(
                    f"{where}.{parameter.name}",
                    "is neither the arguments (the first parameter) nor filled by tierflow "
                    "(ToolContext, Transaction, Annotated[..., Needs(name)])",
                )
            filled[parameter.name] = kind
        return _built(
            where,
            name=name,
            description=description.strip(),
            fn=function,
            parameters=dict(parameters),
            arguments_param=positional[0].name,
            injected=injected_of(filled, where),
            **declared,
        )

    @property
    def holds_results(self) -> bool:
        """Whether an output guard may hold this tool's result for a human."""
        return any(guard.on_fail == "interrupt" for guard in self.output_guards.values())

    # -- what the model sees ------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model sees it."""
        if self.parameters is not None:
            return self.parameters
        assert self.args_schema is not None
        return self.args_schema.model_json_schema()

    def argument_names(self) -> frozenset[str]:
        return frozenset(self.json_schema().get("properties", {}))

    def openai_schema(self) -> dict[str, Any]:
        """The tool as the OpenAI function-calling format describes it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.json_schema(),
            },
        }

    # -- a call -------------------------------------------------------------------------

    @property
    def needs(self) -> dict[str, str]:
        """Parameter → the run resource it receives."""
        return self.injected.needs

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of a call with the model's `arguments` (checked; raises
        `ArgumentsInvalid`), before tierflow adds what it fills."""
        if self._validator is not None:
            validated_json(self._validator, arguments)
            assert self.arguments_param is not None
            return {self.arguments_param: dict(arguments)}
        assert self.args_schema is not None
        return validated_model(self.args_schema, arguments)

    def arguments_of(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The model's arguments within a call's keyword arguments."""
        if self.arguments_param is not None:
            return dict(kwargs[self.arguments_param])
        filled = self.injected.names()
        return {k: v for k, v in kwargs.items() if k not in filled}

    @property
    def context_param(self) -> str | None:
        return self.injected.context

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description (for `Agent.to_json`)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.json_schema(),
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
            **({"once": self.once.spec()} if self.once is not None else {}),
            **({"needs": self.needs} if self.needs else {}),
            **({"retry": self.retry.model_dump(mode="json")} if self.retry else {}),
        }

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


def _built(where: str, **fields: Any) -> Tool:
    try:
        return Tool(**fields)
    except SpecError as error:
        field = error.field.removeprefix("tool.")
        named = field if field.startswith(f"{where}.") else f"{where}.{field}"
        raise SpecError(named, error.problem) from None


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    side_effects: bool = False,
    once: Once | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
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
    once: Once | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    guards: Mapping[str, Guardrail] | None = None,
    output_guards: Mapping[str, Guardrail] | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a tool from a typed function; its docstring is the description, and an
    argument's description is `Annotated[T, Field(description=...)]` (or a plain
    string in `Annotated`).

    `guards` check its arguments before it runs; `output_guards` check its result
    before the model reads it (see `tierflow.nodes.output_guards`); `once` says how a
    side-effecting call happens exactly once (tierflow.tools.once)."""

    def build(function: Callable[..., Any]) -> Tool:
        tool_name = name or function.__name__
        field = f"tools.{tool_name}"
        text = description or inspect.getdoc(function) or ""
        if not text.strip():
            raise SpecError(field, "needs a description (a docstring or description=...)")
        schema, injected = signature_schema(function, tool_name)
        return _built(
            field,
            name=tool_name,
            description=text.strip(),
            fn=function,
            args_schema=schema,
            injected=injected,
            scope=scope,
            side_effects=side_effects,
            once=once,
            timeout_s=timeout_s,
            retry=retry,
            guards=dict(guards or {}),
            output_guards=dict(output_guards or {}),
        )

    return build if fn is None else build(fn)


def _result_fields(function: Callable[..., Any]) -> frozenset[str] | None:
    """The keys of a tool's result when its return annotation is a TypedDict (the one
    kind of annotated result that reaches the model as a JSON object); None if unknown."""
    try:
        returned = get_type_hints(function).get("return")
    except (NameError, TypeError):
        return None
    return frozenset(get_type_hints(returned)) if is_typeddict(returned) else None
