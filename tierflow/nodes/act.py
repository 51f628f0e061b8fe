"""The `act` node: every tool call of one model turn, concurrently.

It never raises for an expected failure. An unknown tool, arguments that don't match
the schema or aren't JSON, a tool exception, a timeout, too many calls in one turn —
each becomes a `ToolResult` with `ok=False` and words a model can act on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import ValidationError

from tierflow.governance.idempotency import idempotency_key
from tierflow.nodes.dual import dual_node
from tierflow.nodes.state import AgentState, PlanStep, ToolResult
from tierflow.nodes.tools import UPDATE_PLAN, Tool, ToolContext


def describe_validation_error(error: ValidationError) -> str:
    """One line per failing argument, e.g. `order_id: Input should be a valid integer`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(arguments)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def render(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


async def call_tool(tool: Tool, args: Mapping[str, Any], context: ToolContext) -> ToolResult:
    def failed(message: str) -> ToolResult:
        return ToolResult(call_id=context.call_id, name=tool.name, ok=False, content=message)

    try:
        parsed = tool.args_schema.model_validate(dict(args))
    except ValidationError as error:
        return failed(
            f"Invalid arguments for {tool.name}: {describe_validation_error(error)}. "
            "Fix the arguments and call the tool again."
        )
    kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    try:
        if tool.is_async:
            value = await asyncio.wait_for(tool.fn(**kwargs), tool.timeout_s)
        else:
            # A thread can't be cancelled: on timeout the call is abandoned, not stopped.
            value = await asyncio.wait_for(asyncio.to_thread(tool.fn, **kwargs), tool.timeout_s)
    except TimeoutError:
        return failed(
            f"{tool.name} timed out after {tool.timeout_s:g}s. Try again later, or with a "
            "narrower request."
        )
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation for the model
        return failed(f"{tool.name} failed: {type(error).__name__}: {error}")
    return ToolResult(call_id=context.call_id, name=tool.name, ok=True, content=render(value))


def _unknown(call: ToolCall, tools: Mapping[str, Tool]) -> ToolResult:
    return ToolResult(
        call_id=call["id"] or "",
        name=call["name"],
        ok=False,
        content=(f"Unknown tool {call['name']!r}. Available tools: {', '.join(sorted(tools))}."),
    )


def _invalid(call: InvalidToolCall) -> ToolResult:
    return ToolResult(
        call_id=call.get("id") or "",
        name=call.get("name") or "",
        ok=False,
        content=(
            f"The arguments of {call.get('name')!r} were not valid JSON "
            f"({call.get('error') or 'unparseable'}). Send them again as a JSON object."
        ),
    )


def _over_limit(call: ToolCall, limit: int) -> ToolResult:
    return ToolResult(
        call_id=call["id"] or "",
        name=call["name"],
        ok=False,
        content=(
            f"Not run: at most {limit} tool calls are allowed in one turn. "
            "Call it again in the next turn if it is still needed."
        ),
    )


def make_act_node(tools: Sequence[Tool], max_calls_per_turn: int) -> RunnableLambda[Any, Any]:
    by_name = {t.name: t for t in tools}

    async def run_async(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage):
            raise ValueError("act: the last message is not a model turn with tool calls")
        thread_id = str(config.get("configurable", {}).get("thread_id", ""))
        step = state.get("steps", 0)
        calls = list(last.tool_calls)
        runnable, refused = calls[:max_calls_per_turn], calls[max_calls_per_turn:]

        async def one(call: ToolCall) -> ToolResult:
            tool = by_name.get(call["name"])
            if tool is None:
                return _unknown(call, by_name)
            call_id = call["id"] or f"{call['name']}-{step}"
            context = ToolContext(
                thread_id=thread_id,
                step=step,
                call_id=call_id,
                idempotency_key=idempotency_key(thread_id, step, call_id),
            )
            return await call_tool(tool, call["args"], context)

        results = list(await asyncio.gather(*(one(call) for call in runnable)))
        results += [_over_limit(call, max_calls_per_turn) for call in refused]
        results += [_invalid(call) for call in last.invalid_tool_calls]
        update: dict[str, Any] = {"results": results}
        plan = _plan_from(runnable, results)
        if plan is not None:
            update["plan"] = plan
        return update

    def run(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        return asyncio.run(run_async(state, config))

    return dual_node("act", run, run_async)


def _plan_from(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[PlanStep] | None:
    """The plan set by the turn's last successful `update_plan` call, if any."""
    plan: list[PlanStep] | None = None
    for call, result in zip(calls, results, strict=False):
        if call["name"] == UPDATE_PLAN and result["ok"]:
            plan = [PlanStep(step=s["step"], status=s["status"]) for s in call["args"]["steps"]]
    return plan
