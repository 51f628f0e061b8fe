"""The `act` node: every tool call of one model turn, concurrently.

It never raises for an expected failure. An unknown tool, arguments that don't match
the schema or aren't JSON, a tool exception, a timeout, too many calls in one turn —
each becomes a `ToolResult` with `ok=False` and words a model can act on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.types import interrupt
from pydantic import ValidationError

from tierflow.governance.idempotency import idempotency_key
from tierflow.nodes.dual import dual_node
from tierflow.nodes.state import AgentState, GuardRecord, PlanStep, ToolResult
from tierflow.nodes.tool_guards import (
    Prepared,
    Screened,
    ToolReviewRequest,
    apply_review,
    screen,
)
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


def prepare(tool: Tool, args: Mapping[str, Any], context: ToolContext) -> Prepared | ToolResult:
    """Validated keyword arguments for the call, or the error result if they don't fit."""
    try:
        parsed = tool.args_schema.model_validate(dict(args))
    except ValidationError as error:
        return _failed(
            tool,
            context,
            f"Invalid arguments for {tool.name}: {describe_validation_error(error)}. "
            "Fix the arguments and call the tool again.",
        )
    kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    return tool, kwargs, context


def _failed(tool: Tool, context: ToolContext, message: str) -> ToolResult:
    return ToolResult(call_id=context.call_id, name=tool.name, ok=False, content=message)


def _timed_out(tool: Tool, context: ToolContext) -> ToolResult:
    return _failed(
        tool,
        context,
        f"{tool.name} timed out after {tool.timeout_s:g}s. Try again later, or with a "
        "narrower request.",
    )


def _raised(tool: Tool, context: ToolContext, error: BaseException) -> ToolResult:
    return _failed(tool, context, f"{tool.name} failed: {type(error).__name__}: {error}")


def _returned(tool: Tool, context: ToolContext, value: Any) -> ToolResult:
    return ToolResult(call_id=context.call_id, name=tool.name, ok=True, content=render(value))


async def execute_async(prepared: Prepared) -> ToolResult:
    """Run one call on the event loop (async tools) or in a daemon thread (sync tools)."""
    tool, kwargs, context = prepared
    try:
        if tool.is_async:
            value = await asyncio.wait_for(tool.fn(**kwargs), tool.timeout_s)
        else:
            running = asyncio.wrap_future(start_in_thread(tool, kwargs))
            value = await asyncio.wait_for(running, tool.timeout_s)
    except TimeoutError:
        return _timed_out(tool, context)
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation for the model
        return _raised(tool, context, error)
    return _returned(tool, context, value)


def start_in_thread(tool: Tool, kwargs: dict[str, Any]) -> Future[Any]:
    """Start one call in a daemon thread.

    A thread can't be cancelled, so a call that times out is abandoned, not stopped.
    Daemon threads (not an executor's, which are joined at exit, nor asyncio's default
    executor, which `asyncio.run` joins) keep an abandoned call from holding up the run
    or the process.
    """
    future: Future[Any] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            if tool.is_async:
                # A fresh loop in this thread: works even when the caller's thread runs
                # one (graph.invoke from a notebook cell); the timeout cancels the coroutine.
                value = asyncio.run(asyncio.wait_for(tool.fn(**kwargs), tool.timeout_s))
            else:
                value = tool.fn(**kwargs)
        except BaseException as error:  # noqa: BLE001 — handed to the waiting caller
            future.set_exception(error)
        else:
            future.set_result(value)

    threading.Thread(target=work, name=f"tierflow-tool-{tool.name}", daemon=True).start()
    return future


def execute_all_blocking(calls: Sequence[Prepared]) -> list[ToolResult]:
    """Run calls concurrently in threads, each under its own deadline."""
    started = time.monotonic()
    futures = [start_in_thread(tool, kwargs) for tool, kwargs, _ in calls]
    results = []
    for (tool, _, context), future in zip(calls, futures, strict=True):
        remaining = max(0.0, started + tool.timeout_s - time.monotonic())
        try:
            value = future.result(timeout=remaining)
        except (FutureTimeout, TimeoutError):
            results.append(_timed_out(tool, context))
        except Exception as error:  # noqa: BLE001 — an observation, as in execute_async
            results.append(_raised(tool, context, error))
        else:
            results.append(_returned(tool, context, value))
    return results


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

    def plan_calls(
        state: AgentState, config: RunnableConfig
    ) -> tuple[list[ToolCall], list[Prepared | ToolResult], list[ToolResult]]:
        """The turn's calls: those to run (prepared, or already an error) and the
        results of those that won't run (over the limit, unparseable)."""
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage):
            raise ValueError("act: the last message is not a model turn with tool calls")
        thread_id = str(config.get("configurable", {}).get("thread_id", ""))
        step = state.get("steps", 0)
        calls = list(last.tool_calls)
        runnable, refused = calls[:max_calls_per_turn], calls[max_calls_per_turn:]
        work: list[Prepared | ToolResult] = []
        for call in runnable:
            tool = by_name.get(call["name"])
            if tool is None:
                work.append(_unknown(call, by_name))
                continue
            call_id = call["id"] or f"{call['name']}-{step}"
            context = ToolContext(
                thread_id=thread_id,
                step=step,
                call_id=call_id,
                idempotency_key=idempotency_key(thread_id, step, call_id),
            )
            work.append(prepare(tool, call["args"], context))
        skipped = [_over_limit(call, max_calls_per_turn) for call in refused]
        skipped += [_invalid(call) for call in last.invalid_tool_calls]
        return runnable, work, skipped

    def checked(
        state: AgentState, work: list[Prepared | ToolResult]
    ) -> tuple[list[Prepared | ToolResult], list[GuardRecord]]:
        """Argument guardrails of every call, before any runs; one review pause for the
        calls held for a human (interrupt() re-runs this node: nothing has run yet)."""
        screened = [
            screen(item, state) if isinstance(item, tuple) else Screened(item, []) for item in work
        ]
        records = [record for entry in screened for record in entry.records]
        held = [entry.held for entry in screened if entry.held is not None]
        if not held:
            return [entry.item for entry in screened], records
        decision = interrupt(ToolReviewRequest(kind="tool_review", calls=held))
        return apply_review(screened, decision), records

    def update(
        runnable: list[ToolCall],
        results: list[ToolResult],
        skipped: list[ToolResult],
        records: list[GuardRecord],
    ) -> dict[str, Any]:
        written: dict[str, Any] = {"results": results + skipped}
        if records:
            written["verdicts"] = records
        plan = _plan_from(runnable, results)
        if plan is not None:
            written["plan"] = plan
        return written

    async def run_async(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        runnable, work, skipped = plan_calls(state, config)
        work, records = checked(state, work)

        async def one(item: Prepared | ToolResult) -> ToolResult:
            return await execute_async(item) if isinstance(item, tuple) else item

        results = list(await asyncio.gather(*(one(item) for item in work)))
        return update(runnable, results, skipped, records)

    def run(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        runnable, work, skipped = plan_calls(state, config)
        work, records = checked(state, work)
        prepared = [item for item in work if isinstance(item, tuple)]
        done = iter(execute_all_blocking(prepared))
        results = [next(done) if isinstance(item, tuple) else item for item in work]
        return update(runnable, results, skipped, records)

    return dual_node("act", run, run_async)


def _plan_from(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[PlanStep] | None:
    """The plan set by the turn's last successful `update_plan` call, if any."""
    plan: list[PlanStep] | None = None
    for call, result in zip(calls, results, strict=False):
        if call["name"] == UPDATE_PLAN and result["ok"]:
            plan = [PlanStep(step=s["step"], status=s["status"]) for s in call["args"]["steps"]]
    return plan
