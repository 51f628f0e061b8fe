"""The `act` node: every tool call of one model turn, concurrently, through the governor.

It never raises for an expected failure. An unknown tool, arguments that don't match
the schema or aren't JSON, a denial, a tool exception, a timeout, too many calls in one
turn — each becomes a `ToolResult` with `ok=False` and words a model can act on, written
as the tool message the model reads next (the ReAct "Observation").

One path with or without a policy: the calls go through the run's `Governor`, or through
`UNGOVERNED` (a no-op) for an agent without one. Before any runs, the turn's calls are
prepared, screened by their argument guards and authorised (`tool_guards`); then each
runs through `execute_tool` (sync: the node's thread and reusable workers, async tools
on one loop — see `executor`) or `aexecute_tool` (on the caller's loop); then the
output guards check the results (`output_guards`). Under `ainvoke`, the steps that touch
the run store run in a worker thread, off the event loop; without a policy nothing
does, and nothing leaves the loop but a sync tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer

from tierflow.foundation.retry import RetryEvent
from tierflow.governance.gate import OnWait
from tierflow.governance.governor import Governor
from tierflow.governance.idempotency import idempotency_key
from tierflow.governance.redact import Redactor
from tierflow.governance.side_effects import RecordedResult
from tierflow.governance.ungoverned import ToolGovernor
from tierflow.nodes.attempts import CallPlan, aattempts, attempts
from tierflow.nodes.context import Governing, run_context, thread_of
from tierflow.nodes.dual import dual_node
from tierflow.nodes.executor import run_all
from tierflow.nodes.output_guards import answered_from_record, guard_results
from tierflow.nodes.plan_tool import UPDATE_PLAN
from tierflow.nodes.resources import TurnResources
from tierflow.nodes.state import AgentState, GuardRecord, PlanStep, ToolResult
from tierflow.nodes.tool_guards import Cleared, Prepared, checked
from tierflow.tools.arguments import ArgumentsInvalid, ToolContext
from tierflow.tools.declare import Tool

T = TypeVar("T")


def make_act_node(
    tools: Sequence[Tool],
    max_calls_per_turn: int,
    governing: Governing,
    resources: Mapping[str, Callable[[], Any]] | None = None,
) -> Runnable[Any, Any]:
    """The `act` node of an agent with `tools` (`governing`: how it reaches the run's
    governor; `resources`: the agent's run resource factories)."""
    act = Act(tools, max_calls_per_turn, governing, resources or {})
    return dual_node("act", act.run, act.arun)


@dataclass(frozen=True)
class Turn:
    """A model turn's tool calls once checked, before any runs."""

    calls: list[ToolCall]  # those within the turn's limit, in order
    cleared: list[Cleared | ToolResult]  # one per call: cleared to run, or its result
    skipped: list[ToolResult]  # over the limit, or unparseable
    records: list[GuardRecord]  # the argument guards' verdicts
    governor: ToolGovernor
    answered_first: bool  # see `output_guards.answered_from_record`
    store: str | Path  # the run store (a `SameTransaction` tool's default database)
    # The run's "custom" stream (a no-op when nobody streams it): a tool's retries go there.
    report: Callable[[Any], None]


class Act:
    """The `act` node of one compiled agent: `run` under `invoke`, `arun` under
    `ainvoke`; everything run-specific comes from the run's config and context."""

    def __init__(
        self,
        tools: Sequence[Tool],
        max_calls_per_turn: int,
        governing: Governing,
        resources: Mapping[str, Callable[[], Any]],
    ):
        self.tools = {t.name: t for t in tools}
        self.factories = dict(resources)
        self.scopes = {t.name: t.scope for t in tools}  # what ran of a cumulative rule's scope
        self.max_calls = max_calls_per_turn
        self.governing = governing
        self.holds_results = any(t.holds_results for t in tools)
        # A call is retried by its tool's policy, else the agent's; without either, once.
        self.retry = None if governing.policy is None else governing.policy.retry

    def run(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        with self.resources() as resources:
            turn = self.screen(state, config, resources)
            on_wait = self.governing.wait_reporter(config)
            jobs = [partial(self.execute, turn, item, on_wait) for item in _cleared(turn)]
            return self.finish(state, turn, run_all(jobs))

    async def arun(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        with self.resources() as resources:
            turn = await self._off_loop(self.screen, state, config, resources)
            on_wait = self.governing.wait_reporter(config)
            runs = [self.aexecute(turn, item, on_wait) for item in _cleared(turn)]
            done = list(await asyncio.gather(*runs))
            return await self._off_loop(self.finish, state, turn, done)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` — in a worker thread when governed: the run store blocks."""
        if self.governing.governed:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    # -- before: the turn's calls, prepared and checked ---------------------------------

    def resources(self) -> TurnResources:
        """The turn's run resources: the run's, else built from the declared factories."""
        return TurnResources(run_context().resources, self.factories)

    def screen(self, state: AgentState, config: RunnableConfig, resources: TurnResources) -> Turn:
        """The turn's calls after their guards, authorisation and review pause."""
        calls, work, skipped = self.plan(state, config, resources)
        governor = self.governing.tool_governor(config, state.get("principal"))
        answered = self.holds_results and answered_from_record(governor, work)
        cleared, records = checked(state, work, governor, self.scopes)
        store = self.governing.store_of(config)
        report = _stream_writer()  # here, in the node's context; called from any thread
        return Turn(calls, cleared, skipped, records, governor, answered, store, report)

    def plan(
        self, state: AgentState, config: RunnableConfig, resources: TurnResources
    ) -> tuple[list[ToolCall], list[Prepared | ToolResult], list[ToolResult]]:
        """The turn's calls within its limit, each prepared (or already an error), and
        the results of those that won't run (over the limit, unparseable)."""
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage):
            raise ValueError("act: the last message is not a model turn with tool calls")
        thread_id = thread_of(config)
        step = state.get("steps", 0)
        calls = list(last.tool_calls)
        runnable, refused = calls[: self.max_calls], calls[self.max_calls :]
        work: list[Prepared | ToolResult] = []
        for call, call_id in zip(runnable, call_ids(runnable, step), strict=True):
            tool = self.tools.get(call["name"])
            if tool is None:
                work.append(_unknown(call, call_id, self.tools))
                continue
            context = ToolContext(
                thread_id=thread_id,
                step=step,
                call_id=call_id,
                idempotency_key=idempotency_key(thread_id, step, call_id),
            )
            work.append(prepare(tool, call["args"], context, resources))
        skipped = [_over_limit(call, self.max_calls) for call in refused]
        skipped += [_invalid(call) for call in last.invalid_tool_calls]
        return runnable, work, skipped

    # -- running: one call through the governor ------------------------------------------

    def execute(self, turn: Turn, item: Cleared, on_wait: OnWait | None) -> ToolResult:
        prepared = item.prepared
        outcome = turn.governor.execute_tool(
            prepared.call,
            partial(attempts, prepared, self.call_plan(turn, prepared.tool)),
            decision=item.decision,
            on_wait=on_wait,
        )
        return as_result(prepared, outcome)

    async def aexecute(self, turn: Turn, item: Cleared, on_wait: OnWait | None) -> ToolResult:
        prepared = item.prepared
        outcome = await turn.governor.aexecute_tool(
            prepared.call,
            partial(aattempts, prepared, self.call_plan(turn, prepared.tool)),
            decision=item.decision,
            on_wait=on_wait,
        )
        return as_result(prepared, outcome)

    def call_plan(self, turn: Turn, tool: Tool) -> CallPlan:
        governor = turn.governor
        # the redaction of the run's side-effect records (the default one without a policy)
        redactor = governor.redactor if isinstance(governor, Governor) else self.redactor

        def on_retry(event: RetryEvent) -> None:
            # Seen by `stream_mode="custom"` (and `tierflow run --stream`), as a model's are.
            turn.report({"event": "retry", "node": "act", "tool": tool.name, **event})

        return CallPlan(
            retry=tool.retry or self.retry,
            store=turn.store,
            redact=redactor.redact_text,
            on_retry=on_retry,
        )

    @cached_property
    def redactor(self) -> Redactor:
        return Redactor()

    # -- after: the results, checked and written ------------------------------------------

    def finish(self, state: AgentState, turn: Turn, done: list[ToolResult]) -> dict[str, Any]:
        """The turn's update: the results (the cleared calls' in `done`, in order) after
        the output guards, as tool messages; the guards' verdicts; the plan, if set."""
        ran = iter(done)
        results = [next(ran) if isinstance(item, Cleared) else item for item in turn.cleared]
        calls = [item.prepared if isinstance(item, Cleared) else None for item in turn.cleared]
        results, verdicts = guard_results(
            state, calls, results, turn.governor, answered_first=turn.answered_first
        )
        written: dict[str, Any] = {"messages": [observation(r) for r in (*results, *turn.skipped)]}
        if turn.records or verdicts:
            written["verdicts"] = turn.records + verdicts
        plan = _plan_from(turn.calls, results)
        if plan is not None:
            written["plan"] = plan
        return written


def _cleared(turn: Turn) -> list[Cleared]:
    return [item for item in turn.cleared if isinstance(item, Cleared)]


# --- one call -----------------------------------------------------------------------


def call_ids(calls: Sequence[ToolCall], step: int) -> list[str]:
    """Each call's id in its turn: the model's, unless it sent none or repeated one
    (some servers do) — then the tool's name, the step and the call's position. No two
    calls of a turn share an id, so none shares another's idempotency key."""
    ids: list[str] = []
    for position, call in enumerate(calls):
        call_id = call["id"]
        if not call_id or call_id in ids:
            call_id = f"{call['name']}-{step}-{position}"
        while call_id in ids:  # a model's id that happens to look like ours
            call_id += "'"
        ids.append(call_id)
    return ids


def prepare(
    tool: Tool, args: Mapping[str, Any], context: ToolContext, resources: TurnResources
) -> Prepared | ToolResult:
    """Keyword arguments for the call — the model's, checked against the tool's schema,
    and what tierflow fills — or the error result if the model's don't fit."""
    try:
        kwargs = tool.bind(args)
    except ArgumentsInvalid as error:
        return _failed(
            tool.name,
            context.call_id,
            f"Invalid arguments for {tool.name}: {error}. Fix the arguments and call the "
            "tool again.",
        )
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    for parameter, resource in tool.needs.items():
        kwargs[parameter] = resources.get(resource)
    return Prepared.of(tool, kwargs, context)


def as_result(prepared: Prepared, outcome: RecordedResult | None) -> ToolResult:
    tool = prepared.tool
    if outcome is None:
        return prepared.result(
            f"{tool.name} timed out after {tool.timeout_s:g}s. Try again later, or with a "
            "narrower request."
        )
    return prepared.result(outcome.content, ok=outcome.ok)


# --- results tierflow writes --------------------------------------------------------------


def _failed(name: str, call_id: str, message: str) -> ToolResult:
    return ToolResult(call_id=call_id, name=name, ok=False, content=message)


def _unknown(call: ToolCall, call_id: str, tools: Mapping[str, Tool]) -> ToolResult:
    return _failed(
        call["name"],
        call_id,
        f"Unknown tool {call['name']!r}. Available tools: {', '.join(sorted(tools))}.",
    )


def _invalid(call: InvalidToolCall) -> ToolResult:
    return _failed(
        call.get("name") or "",
        call.get("id") or "",
        f"The arguments of {call.get('name')!r} were not valid JSON "
        f"({call.get('error') or 'unparseable'}). Send them again as a JSON object.",
    )


def _over_limit(call: ToolCall, limit: int) -> ToolResult:
    return _failed(
        call["name"],
        call["id"] or "",
        f"Not run: at most {limit} tool calls are allowed in one turn. "
        "Call it again in the next turn if it is still needed.",
    )


def observation(result: ToolResult) -> ToolMessage:
    """A result as the tool message the model reads (errors marked `status="error"`)."""
    return ToolMessage(
        content=result["content"] if result["ok"] else f"Error: {result['content']}",
        tool_call_id=result["call_id"],
        name=result["name"],
        status="success" if result["ok"] else "error",
    )


def _plan_from(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[PlanStep] | None:
    """The plan set by the turn's last successful `update_plan` call, if any."""
    plan: list[PlanStep] | None = None
    for call, result in zip(calls, results, strict=False):
        if call["name"] == UPDATE_PLAN and result["ok"]:
            plan = [PlanStep(step=s["step"], status=s["status"]) for s in call["args"]["steps"]]
    return plan


def _stream_writer() -> Callable[[Any], None]:
    """The run's "custom" stream writer; a no-op for a node invoked outside a graph."""
    try:
        return get_stream_writer()
    except (KeyError, RuntimeError):
        return lambda _chunk: None
