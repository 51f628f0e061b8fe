"""LangChain tools (`BaseTool`) as tierflow tools: `from_langchain`.

The model sees the tool's own JSON schema, as LangChain sends it to OpenAI
(`convert_to_openai_tool`: argument descriptions kept, titles dropped); tierflow checks
what the model sent against it, then invokes the tool with a tool call, so
`InjectedToolCallId` arguments get the call's id. A tool with only a coroutine (an MCP
tool, `StructuredTool(coroutine=...)`) is awaited on tierflow's loop; any other runs in
a worker thread.

The call's identity reaches the tool in its `RunnableConfig` metadata (a LangChain tool
declares a `config: RunnableConfig` parameter to read it): `idempotency_key` — the same
on every attempt of the call, in every process — and `attempt` (1 on the first; above 1
an earlier attempt may have had its effect). `key_argument` names an argument of the
tool that receives the key instead of the model: it is hidden from the schema the
model sees.

What the tool raises (a `ToolException`, any other error) and what it reports as an
error (a handled `ToolException`, an MCP error result: a tool message with
`status="error"`) become a failed call the model reads, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import BaseTool, InjectedToolCallId, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from tierflow.errors import SpecError
from tierflow.foundation.retry import RetryPolicy
from tierflow.guardrails.base import Guardrail
from tierflow.tools.arguments import ToolContext
from tierflow.tools.declare import Tool
from tierflow.tools.once import Once

# The keys of a call's identity in the `RunnableConfig` metadata the tool is invoked with.
KEY_METADATA = "idempotency_key"
ATTEMPT_METADATA = "attempt"


def from_langchain(
    tool: BaseTool,
    *,
    scope: str | None = None,
    side_effects: bool = False,
    once: Once | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    guards: Mapping[str, Guardrail] | None = None,
    output_guards: Mapping[str, Guardrail] | None = None,
    key_argument: str | None = None,
) -> Tool:
    """A tierflow tool that invokes the LangChain `tool`, governed by what is declared
    beside it (as for `@tool`). `key_argument`: the tool's argument that receives the
    call's idempotency key (not shown to the model)."""
    parameters = langchain_parameters(tool)
    unfilled = _unfilled(tool, parameters)
    if unfilled:
        raise SpecError(
            f"tools.{tool.name}.{unfilled[0]}",
            "LangChain injects it (InjectedToolArg, InjectedState, InjectedStore), which a "
            "tierflow call can't: only an InjectedToolCallId is filled; give it a default",
        )
    if key_argument is not None:
        parameters = _without(parameters, key_argument, f"tools.{tool.name}.key_argument")
    return Tool.from_schema(
        tool.name,
        tool.description,
        parameters,
        langchain_function(tool, key_argument),
        scope=scope,
        side_effects=side_effects,
        once=once,
        timeout_s=timeout_s,
        retry=retry,
        guards=dict(guards or {}),
        output_guards=dict(output_guards or {}),
    )


def langchain_parameters(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of `tool`'s arguments as LangChain sends it to OpenAI."""
    parameters: dict[str, Any] = convert_to_openai_tool(tool)["function"]["parameters"]
    return parameters


def langchain_function(tool: BaseTool, key_argument: str | None = None) -> Callable[..., Any]:
    """A `Tool.from_schema` function invoking `tool` with the model's arguments (and the
    call's key as `key_argument`): a coroutine function if the tool only has a coroutine."""

    def call_of(arguments: dict[str, Any], context: ToolContext) -> ToolCall:
        if key_argument is not None:
            arguments = {**arguments, key_argument: context.idempotency_key}
        return ToolCall(name=tool.name, args=arguments, id=context.call_id, type="tool_call")

    if is_async_only(tool):

        async def ainvoke(arguments: dict[str, Any], context: ToolContext) -> Any:
            output = await tool.ainvoke(call_of(arguments, context), config_of(context))
            return outcome(output)

        return ainvoke

    def invoke(arguments: dict[str, Any], context: ToolContext) -> Any:
        return outcome(tool.invoke(call_of(arguments, context), config_of(context)))

    return invoke


def is_async_only(tool: BaseTool) -> bool:
    """Whether `tool` can only be awaited (a `StructuredTool` or `Tool` with a coroutine
    and no function)."""
    return getattr(tool, "func", False) is None and getattr(tool, "coroutine", None) is not None


def config_of(context: ToolContext) -> RunnableConfig:
    """The run's config (callbacks, so the call is traced under the `act` node), its
    metadata with the call's identity added."""
    metadata = {
        **ensure_config().get("metadata", {}),
        KEY_METADATA: context.idempotency_key,
        ATTEMPT_METADATA: context.attempt,
    }
    return {"metadata": metadata}


def call_metadata(config: RunnableConfig) -> tuple[str, int] | None:
    """(idempotency key, attempt) of the tierflow call a LangChain config serves, if any."""
    metadata = config.get("metadata") or {}
    key, attempt = metadata.get(KEY_METADATA), metadata.get(ATTEMPT_METADATA)
    if isinstance(key, str) and isinstance(attempt, int):
        return key, attempt
    return None


def outcome(output: Any) -> Any:
    """The tool's result as tierflow renders it; an error the tool reported, raised."""
    if not isinstance(output, ToolMessage):
        return output
    text = message_text(output.content)
    if output.status == "error":
        raise ToolException(text)
    return text


def message_text(content: str | list[str | dict[str, Any]]) -> str:
    """A tool message's content as text: text blocks joined by newlines, other blocks
    (an image, a file) as JSON."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(json.dumps(block, ensure_ascii=False, default=str))
    return "\n".join(parts)


def _unfilled(tool: BaseTool, parameters: Mapping[str, Any]) -> list[str]:
    """The required arguments of `tool` hidden from the model (LangChain injects them)
    that a tierflow call can't fill: every one but an `InjectedToolCallId`."""
    schema = tool.args_schema
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return []
    shown = set(parameters.get("properties", {}))
    return [
        name
        for name, field in schema.model_fields.items()
        if name not in shown
        and field.is_required()
        and not any(
            m is InjectedToolCallId or isinstance(m, InjectedToolCallId) for m in field.metadata
        )
    ]


def _without(parameters: Mapping[str, Any], argument: str, where: str) -> dict[str, Any]:
    """`parameters` without `argument` (which tierflow fills), or a SpecError if the
    schema has no such argument."""
    properties = dict(parameters.get("properties", {}))
    if argument not in properties:
        raise SpecError(
            where, f"the tool has no argument {argument!r} (arguments: {sorted(properties)})"
        )
    del properties[argument]
    hidden = {**parameters, "properties": properties}
    if "required" in parameters:
        hidden["required"] = [name for name in parameters["required"] if name != argument]
    return hidden
