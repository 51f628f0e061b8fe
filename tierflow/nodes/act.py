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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.types import interrupt
from pydantic import ValidationError

from tierflow.governance.audit import AuditDecision
from tierflow.governance.gate import WaitEvent
from tierflow.governance.governor import GovernedCall, Governor, ToolVerdict
from tierflow.governance.idempotency import idempotency_key
from tierflow.governance.retry import Backoff, acall_with_retries, call_with_retries
from tierflow.governance.side_effects import RecordedResult
from tierflow.nodes.dual import dual_node
from tierflow.nodes.governed import Governance
from tierflow.nodes.output_guards import answered_from_record, guard_results
from tierflow.nodes.state import AgentState, GuardRecord, PlanStep, ToolResult
from tierflow.nodes.tool_guards import (
    HeldCall,
    Prepared,
    Screened,
    ToolReviewRequest,
    blocked,
    screen,
    visible_arguments,
)
from tierflow.nodes.tools import UPDATE_PLAN, Tool, ToolContext

T = TypeVar("T")


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


def make_act_node(
    tools: Sequence[Tool], max_calls_per_turn: int, governance: Governance | None = None
) -> RunnableLambda[Any, Any]:
    """`governance`: every call is authorized by the thread's governor before any runs
    (denied: its denial is the result), held for approval in the turn's one review
    pause when a rule says so, and run through `Governor.execute_tool` (slots,
    retries, side-effect record, audit). None: the tools run ungoverned."""
    by_name = {t.name: t for t in tools}
    scopes = {t.name: t.scope for t in tools}  # what ran of a cumulative rule's scope

    def plan_calls(
        state: AgentState, config: RunnableConfig
    ) -> tuple[list[ToolCall], list[Prepared | ToolResult], list[ToolResult]]:
        """The turn's calls: those to run (prepared, or already an error) and the
        results of those that won't run (over the limit, unparseable)."""
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage):
            raise ValueError("act: the last message is not a model turn with tool calls")
        thread_id = thread_of(config)
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

    holds_results = any(t.holds_results for t in tools)

    def answered_first(governor: Governor | None, work: list[Prepared | ToolResult]) -> bool:
        return governor is not None and holds_results and answered_from_record(governor, work)

    async def run_async(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        runnable, work, skipped = plan_calls(state, config)
        thread_id = thread_of(config)
        governor = governance.governor(thread_id) if governance is not None else None
        answered = answered_first(governor, work)
        cleared, records = checked(state, work, governor, scopes)

        async def one(item: Cleared | ToolResult) -> ToolResult:
            if not isinstance(item, Cleared):
                return item
            if governor is None or item.call is None or governance is None:
                return await execute_async(item.prepared)
            return await execute_governed_async(governor, item, governance.wait_reporter(thread_id))

        results = list(await asyncio.gather(*(one(item) for item in cleared)))
        results, verdicts = guard_results(
            state, ran_calls(cleared), results, governor, answered_first=answered
        )
        return update(runnable, results, skipped, records + verdicts)

    def run(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        runnable, work, skipped = plan_calls(state, config)
        thread_id = thread_of(config)
        governor = governance.governor(thread_id) if governance is not None else None
        answered = answered_first(governor, work)
        cleared, records = checked(state, work, governor, scopes)
        if governor is None or governance is None:
            prepared = [item.prepared for item in cleared if isinstance(item, Cleared)]
            done = iter(execute_all_blocking(prepared))
            results = [next(done) if isinstance(item, Cleared) else item for item in cleared]
        else:
            results = execute_all_governed(governor, cleared, governance.wait_reporter(thread_id))
        results, verdicts = guard_results(
            state, ran_calls(cleared), results, governor, answered_first=answered
        )
        return update(runnable, results, skipped, records + verdicts)

    return dual_node("act", run, run_async)


def checked(
    state: AgentState,
    work: list[Prepared | ToolResult],
    governor: Governor | None,
    scopes: Mapping[str, str | None] | None = None,
) -> tuple[list[Cleared | ToolResult], list[GuardRecord]]:
    """Permission, argument guardrails and approval rules of every call, before any
    runs — the approval rules with the whole turn in view (`scopes`: the agent's tools
    and their scopes); one review pause for every call held for a human (interrupt()
    re-runs this node: nothing has run yet, and the audit log ignores the repeated
    rows)."""
    screened: list[tuple[Screened, GovernedCall | None]] = []
    planned = [governed_call(item) for item in work if isinstance(item, tuple)]
    for item in work:
        if not isinstance(item, tuple):
            screened.append((Screened(item, []), None))
            continue
        if governor is not None:
            verdict = governor.authorize_tool(governed_call(item), turn=planned, tool_scopes=scopes)
            if verdict.verdict == "denied":
                screened.append((Screened(blocked(item, verdict.message), []), None))
                continue
        entry = screen(item, state)
        if governor is None or not isinstance(entry.item, tuple):
            screened.append((entry, None))
            continue
        screened.append((entry, governed_call(entry.item)))  # arguments a guard may have fixed
    if governor is not None:
        turn = [call for _, call in screened if call is not None]
        screened = [
            (entry if call is None else approval_checked(governor, entry, call, turn, scopes), call)
            for entry, call in screened
        ]
    records = [record for entry, _ in screened for record in entry.records]
    held = [entry.held for entry, _ in screened if entry.held is not None]
    decision: Mapping[str, Any] = {}
    unseen: set[str] = set()
    if held:
        recorded = governor.recorded_review(held) if governor is not None else None
        if recorded is not None:  # decided before a crash: never asked twice
            decision = recorded
        else:
            decision = interrupt(ToolReviewRequest(kind="tool_review", calls=held))
            unseen = _not_shown(held, decision)
            if governor is not None:  # durable before any approved call runs
                for calls, given in (
                    ([h for h in held if h["call_id"] not in unseen], decision),
                    ([h for h in held if h["call_id"] in unseen], NOT_SHOWN),
                ):
                    if calls:
                        governor.record_review(calls, given)
    return [
        reviewed(entry, call, NOT_SHOWN if _id(entry) in unseen else decision, governor)
        for entry, call in screened
    ], records


# The decision on a call held only after the reviewer decided (the held set grew between
# the pause and the resume): nobody saw it, so it does not run.
NOT_SHOWN: Mapping[str, Any] = {
    "action": "reject",
    "reason": "held after the reviewer decided, so never reviewed",
}


def _not_shown(held: Sequence[HeldCall], decision: Mapping[str, Any]) -> set[str]:
    shown = decision.get("call_ids")
    if not isinstance(shown, list):  # a decision from older code or from Python: all seen
        return set()
    return {h["call_id"] for h in held if h["call_id"] not in shown}


def _id(entry: Screened) -> str | None:
    return None if entry.held is None else entry.held["call_id"]


def ran_calls(items: Sequence[Cleared | ToolResult]) -> list[Prepared | None]:
    """The call behind each result: None for a result tierflow wrote (the call never
    ran), whose text the output guards don't check."""
    return [item.prepared if isinstance(item, Cleared) else None for item in items]


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


# --- governed calls ------------------------------------------------------------------


@dataclass(frozen=True)
class Cleared:
    """A call that may run: its prepared arguments, and — when governed — the call as
    the governor knows it and the audit decision it runs under."""

    prepared: Prepared
    call: GovernedCall | None = None
    decision: AuditDecision = "allowed"


def thread_of(config: RunnableConfig) -> str:
    return str(config.get("configurable", {}).get("thread_id", ""))


def governed_call(prepared: Prepared) -> GovernedCall:
    tool, _, context = prepared
    return GovernedCall(
        tool=tool.name,
        scope=tool.scope,
        arguments=visible_arguments(prepared),
        step=context.step,
        call_id=context.call_id,
        # a result that can be held is recorded too: the review's resume mustn't rerun it
        idempotency_key=context.idempotency_key
        if tool.side_effects or tool.holds_results
        else None,
    )


def approval_checked(
    governor: Governor,
    entry: Screened,
    call: GovernedCall,
    turn: Sequence[GovernedCall],
    scopes: Mapping[str, str | None] | None,
) -> Screened:
    """A screened call after the policy's rules on its final arguments, with its turn:
    held for review, refused (a flow rule on the arguments a guard fixed), or as it was."""
    verdict = governor.authorize_tool(call, turn=turn, tool_scopes=scopes)
    if verdict.verdict == "denied" and isinstance(entry.item, tuple):
        return Screened(blocked(entry.item, verdict.message), entry.records)
    if verdict.verdict == "needs_approval":
        return Screened(entry.item, entry.records, held_for_approval(entry, verdict))
    return entry


def held_for_approval(entry: Screened, verdict: ToolVerdict) -> HeldCall:
    """The review entry of a call an approval rule holds (joined with a guard's hold)."""
    assert isinstance(entry.item, tuple)
    tool, _, context = entry.item
    approval = f"approval:{verdict.scope}"
    if entry.held is None:
        return HeldCall(
            tool=tool.name,
            call_id=context.call_id,
            arguments=visible_arguments(entry.item),
            guard=approval,
            reason=verdict.reason,
            held_by=["approval"],
        )
    return HeldCall(
        tool=entry.held["tool"],
        call_id=entry.held["call_id"],
        arguments=entry.held["arguments"],
        guard=f"{entry.held['guard']}, {approval}",
        reason=f"{entry.held['reason']}; {verdict.reason}",
        held_by=[*entry.held["held_by"], "approval"],
    )


def reviewed(
    entry: Screened,
    call: GovernedCall | None,
    decision: Mapping[str, Any],
    governor: Governor | None,
) -> Cleared | ToolResult:
    """A screened call after the review pause: cleared to run, or its result."""
    if not isinstance(entry.item, tuple):
        return entry.item
    if entry.held is None:
        return Cleared(entry.item, call)
    held_by_rule = "approval" in entry.held["held_by"]
    if governor is not None and call is not None and held_by_rule:
        outcome = governor.reviewed(call, decision)  # audits a rejection
    else:
        outcome = "approved" if decision.get("action") == "approve" else "rejected"
    if outcome == "approved":
        return Cleared(entry.item, call, "approved" if held_by_rule else "allowed")
    why = decision.get("reason") or "no reason given"
    return blocked(entry.item, f"Rejected by a human reviewer: {why}. Do not retry it.")


def _failure_text(tool: Tool, error: BaseException) -> str:
    notes = "; ".join(getattr(error, "__notes__", []))
    text = f"{tool.name} failed: {type(error).__name__}: {error}"
    return f"{text} ({notes})" if notes else text


def _as_result(prepared: Prepared, outcome: RecordedResult | None) -> ToolResult:
    tool, _, context = prepared
    if outcome is None:
        return _timed_out(tool, context)
    return ToolResult(
        call_id=context.call_id, name=tool.name, ok=outcome.ok, content=outcome.content
    )


def run_with_retries(prepared: Prepared, backoff: Backoff) -> RecordedResult | None:
    """One call in daemon threads, each attempt under the tool's timeout, retried on
    transient errors: its outcome, or None when its last attempt timed out."""
    tool, kwargs, _ = prepared

    def attempt() -> Any:
        return start_in_thread(tool, kwargs).result(timeout=tool.timeout_s)

    try:
        value = call_with_retries(attempt, backoff)
    except TimeoutError:  # concurrent.futures.TimeoutError is the builtin
        return None
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation
        return RecordedResult(False, _failure_text(tool, error))
    return RecordedResult(True, render(value))


async def run_with_retries_async(prepared: Prepared, backoff: Backoff) -> RecordedResult | None:
    """The async twin of `run_with_retries`: async tools on the loop, sync ones in a
    daemon thread."""
    tool, kwargs, _ = prepared

    async def attempt() -> Any:
        if tool.is_async:
            return await asyncio.wait_for(tool.fn(**kwargs), tool.timeout_s)
        running = asyncio.wrap_future(start_in_thread(tool, kwargs))
        return await asyncio.wait_for(running, tool.timeout_s)

    try:
        value = await acall_with_retries(attempt, backoff)
    except TimeoutError:
        return None
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation
        return RecordedResult(False, _failure_text(tool, error))
    return RecordedResult(True, render(value))


def execute_governed(
    governor: Governor, item: Cleared, on_wait: Callable[[WaitEvent], None] | None
) -> ToolResult:
    assert item.call is not None
    backoff = governor.policy.retry
    outcome = governor.execute_tool(
        item.call,
        lambda: run_with_retries(item.prepared, backoff),
        decision=item.decision,
        on_wait=on_wait,
    )
    return _as_result(item.prepared, outcome)


async def execute_governed_async(
    governor: Governor, item: Cleared, on_wait: Callable[[WaitEvent], None] | None
) -> ToolResult:
    assert item.call is not None
    backoff = governor.policy.retry

    async def run() -> RecordedResult | None:
        return await run_with_retries_async(item.prepared, backoff)

    outcome = await governor.execute_tool_async(
        item.call, run, decision=item.decision, on_wait=on_wait
    )
    return _as_result(item.prepared, outcome)


def execute_all_governed(
    governor: Governor,
    items: Sequence[Cleared | ToolResult],
    on_wait: Callable[[WaitEvent], None] | None,
) -> list[ToolResult]:
    """Every cleared call in its own daemon thread (waiting for its slot there), at
    once; each attempt inside has its own deadline, so every thread ends."""
    futures: list[Future[ToolResult] | ToolResult] = []
    for item in items:
        if isinstance(item, Cleared):
            futures.append(in_daemon_thread(execute_governed, governor, item, on_wait))
        else:
            futures.append(item)
    return [entry.result() if isinstance(entry, Future) else entry for entry in futures]


def in_daemon_thread(fn: Callable[..., T], *args: Any) -> Future[T]:
    """`fn(*args)` in a daemon thread; its result (or exception) in the future."""
    future: Future[T] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # noqa: BLE001 — handed to the waiting caller
            future.set_exception(error)

    threading.Thread(target=work, name="tierflow-governed-call", daemon=True).start()
    return future


def _plan_from(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[PlanStep] | None:
    """The plan set by the turn's last successful `update_plan` call, if any."""
    plan: list[PlanStep] | None = None
    for call, result in zip(calls, results, strict=False):
        if call["name"] == UPDATE_PLAN and result["ok"]:
            plan = [PlanStep(step=s["step"], status=s["status"]) for s in call["args"]["steps"]]
    return plan
