"""A run read back from the store as plain data: what the report shows.

One thread: its runs row, each checkpoint's step (the route it decided, the model call,
the tool calls asked for and their results, the guard verdicts, the plan, the status),
its audit rows (allowed, denied, approved, rejected), its calls summed per tier and —
when its agent loads — priced on one tier for everything. Everything is read as stored:
a governed run's checkpoints and audit rows are redacted already, and stay so.

Read-only: nothing here writes to the store; a database that isn't there is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from tierflow.errors import CheckpointError, TierflowError
from tierflow.governance.audit import AuditEntry, audit
from tierflow.graphs.names import display
from tierflow.models.messages import text_of
from tierflow.nodes.state import AgentState, GuardRecord, ModelCall, PlanStep
from tierflow.routing.router import RouteDecision
from tierflow.runs.report import StepTotals, TierSummary, run_tiers, step_summary, tier_summary
from tierflow.store.history import history
from tierflow.store.runs import RunRow, RunsTable
from tierflow.store.targets import is_postgres

if TYPE_CHECKING:
    from tierflow.models.price import Price
    from tierflow.store.history import Store

GROWING = ("routes", "calls", "verdicts", "messages")  # state keys that only grow
INTERRUPTS = "__interrupt__"  # the channel LangGraph writes a paused run's requests to


class Comparison(TypedDict):
    """The run's calls priced as routed and as if every call had run on each tier
    (`one_tier`, cheapest tier first), and the assumptions behind it, in words."""

    routed: float
    one_tier: dict[str, float]
    notes: list[str]


# Prices the calls on one tier for everything: (calls, tier prices, title) → Comparison.
Compare = Callable[[Sequence[ModelCall], Mapping[str, "Price"], str], Comparison]


@dataclass
class ToolUse:
    """A tool call the model asked for, and its result once `act` ran it."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    step: int | None
    result: str | None = None
    ok: bool | None = None
    result_step: int | None = None


@dataclass
class Step:
    """One checkpoint of the thread and what the step that produced it did."""

    step: int | None
    node: str
    checkpoint_id: str
    ts: str
    seconds: float | None
    request: str | None = None
    routes: list[RouteDecision] = field(default_factory=list)
    calls: list[ModelCall] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # what the model answered (no tool call)
    asked: list[ToolUse] = field(default_factory=list)
    results: list[ToolUse] = field(default_factory=list)
    verdicts: list[GuardRecord] = field(default_factory=list)
    plan: list[PlanStep] | None = None
    escalation: str | None = None
    feedback: str | None = None  # what a guard told the model to fix (a reask)
    status: str | None = None
    answer: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return any(not v["ok"] for v in self.verdicts) or any(r.ok is False for r in self.results)

    @property
    def empty(self) -> bool:
        parts = (self.routes, self.calls, self.said, self.asked, self.results, self.verdicts)
        once = (self.request, self.plan, self.escalation, self.feedback, self.status)
        return not any(parts) and not any(once)


@dataclass
class RunData:
    """Everything the report shows about one thread, as plain data."""

    thread: str
    db: str
    row: RunRow | None
    status: str
    objective: str
    answer: str | None
    error: str | None
    principal: str | None
    steps: list[Step]
    tools: list[ToolUse]
    routes: list[RouteDecision]
    calls: list[ModelCall]
    verdicts: list[GuardRecord]
    plans: list[tuple[int | None, list[PlanStep]]]
    audit: list[AuditEntry]
    pending: list[Any]
    tiers: TierSummary
    comparison: Comparison | None = None
    notes: list[str] = field(default_factory=list)
    by_step: list[StepTotals] = field(default_factory=list)  # a workflow's, per step
    svg: str | None = None  # the graph with the run's path, cleaned inline SVG
    graph_note: str | None = None  # why there is none


def require_db(db: str) -> None:
    """One clear line when `db` is not there, or is an empty file: nothing here creates
    a database or writes tierflow's tables into one (the report and the viewer only
    read)."""
    if is_postgres(db):
        return
    path = Path(db)
    if not path.is_file():
        raise CheckpointError(f"no database at {db}")
    # Empty: no byte in the file nor in its write-ahead log (a live store in WAL mode
    # can have its whole content in `-wal`, the main file still 0 bytes).
    wal = path.with_name(path.name + "-wal")
    if path.stat().st_size == 0 and not (wal.is_file() and wal.stat().st_size > 0):
        raise CheckpointError(f"{db} is empty: not a tierflow run store")


def read_run(db: str, thread: str, *, compare: Compare | None = None) -> RunData:
    """Thread `thread` of the run store `db` as plain data (no graph: `graph.run_svg`)."""
    require_db(db)
    from tierflow import store as run_store

    row = RunsTable(db).get(thread)
    with run_store.open(db, create=False) as store:
        steps, values, pending = read_steps(store, thread)
    state = cast(AgentState, values)
    calls = list(state.get("calls") or [])
    data = RunData(
        thread=thread,
        db=db,
        row=row,
        status=row["status"] if row else str(state.get("status", "running")),
        # A workflow keeps the user's words (`request`) apart from its objective.
        objective=str(
            values.get("request") or state.get("objective") or (row["request"] if row else "")
        ),
        answer=state.get("answer"),
        error=state.get("error") or (row["error"] if row else None),
        principal=principal_name((row["principal"] if row else None) or state.get("principal")),
        steps=steps,
        tools=paired_tools(steps),
        routes=list(state.get("routes") or []),
        calls=calls,
        verdicts=list(state.get("verdicts") or []),
        plans=[(s.step, s.plan) for s in steps if s.plan is not None],
        audit=audit(db, thread),
        pending=pending,
        tiers=run_tiers(state),
        by_step=step_summary(calls),
    )
    prices = tier_prices(row, data.notes)
    if prices:
        data.tiers = tier_summary(calls, list(prices))
        if compare is not None and calls:
            data.comparison = compare(calls, prices, data.objective)
    return data


def principal_name(principal: Mapping[str, Any] | None) -> str | None:
    if not principal:
        return None
    return str(principal.get("id") or principal)


def tier_prices(row: RunRow | None, notes: list[str]) -> dict[str, Price]:
    """The agent's tier prices, cheapest tier first, from the file the run was started
    from; none (and a note saying why) when it no longer loads."""
    if row is None or not row["source"]:
        notes.append("The run's agent is not recorded: no one-tier comparison.")
        return {}
    from tierflow.runs.load import load_declared

    try:
        agent, _ = load_declared(row["source"])
    except TierflowError as error:
        notes.append(f"The agent did not load ({error}): no one-tier comparison.")
        return {}
    return {tier.name: tier.price for tier in agent.tiers}


def read_steps(store: Store, thread: str) -> tuple[list[Step], dict[str, Any], list[Any]]:
    """The thread's steps (oldest first), its latest state, and what it waits for."""
    entries = {e.checkpoint_id: e for e in history(store, thread)}
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    tuples = list(store.list(config))
    seen: dict[str, dict[str, Any]] = {}
    steps: list[Step] = []
    for found in reversed(tuples):
        checkpoint_id = found.config["configurable"]["checkpoint_id"]
        parent = found.parent_config["configurable"]["checkpoint_id"] if found.parent_config else ""
        values: dict[str, Any] = found.checkpoint["channel_values"]
        entry = entries.get(checkpoint_id)
        ts = entry.ts if entry else str(found.checkpoint.get("ts", ""))
        step = Step(
            step=entry.step if entry else None,
            node=_node(entry.node) if entry else "?",
            checkpoint_id=checkpoint_id,
            ts=ts,
            seconds=_between(seen.get(parent, {}).get("ts"), ts),
        )
        fill(step, seen.get(parent, {}), values)
        steps.append(step)
        seen[checkpoint_id] = {**_sizes(values), "ts": ts}
    if not tuples:
        return steps, {}, []
    pending: list[Any] = []  # each pause's request: LangGraph's interrupts, written pending
    for _, channel, written in tuples[0].pending_writes or []:
        if channel == INTERRUPTS:
            for item in written if isinstance(written, list) else [written]:
                pending.append(getattr(item, "value", item))
    return steps, tuples[0].checkpoint["channel_values"], pending


def _node(names: str) -> str:
    """The node(s) that made a checkpoint, as diagrams name them (`model:fast`)."""
    return ", ".join(display(name) for name in names.split(",") if name) or "-"


def _sizes(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a child checkpoint is compared with: the lengths of the growing lists and
    the values that are replaced."""
    found: dict[str, Any] = {key: len(values.get(key) or []) for key in GROWING}
    for key in ("request", "objective", "plan", "status", "escalation", "feedback"):
        found[key] = values.get(key)
    return found


def _between(earlier: str | None, later: str) -> float | None:
    try:
        return (
            datetime.fromisoformat(later) - datetime.fromisoformat(earlier or "")
        ).total_seconds()
    except ValueError:
        return None


def fill(step: Step, before: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """What changed from the parent checkpoint (`before`, its `_sizes`) to `values`."""

    def new(key: str) -> list[Any]:
        items: list[Any] = list(values.get(key) or [])
        return items[before.get(key, 0) :] if before.get(key, 0) <= len(items) else items

    asked = values.get("request") or values.get("objective")  # a workflow's, an agent's
    if asked and asked != (before.get("request") or before.get("objective")):
        step.request = str(asked)
    step.routes = new("routes")
    step.calls = new("calls")
    step.verdicts = new("verdicts")
    _messages(step, new("messages"))
    if values.get("plan") and values.get("plan") != before.get("plan"):
        step.plan = list(values["plan"])
    for key in ("escalation", "feedback"):
        if values.get(key) and values.get(key) != before.get(key):
            setattr(step, key, str(values[key]))
    status = values.get("status")
    if status != before.get("status") and status not in (None, "running"):
        step.status = str(status)
        step.answer = values.get("answer")
        step.error = values.get("error")


def _messages(step: Step, messages: Sequence[BaseMessage]) -> None:
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                step.asked.append(
                    ToolUse(str(call.get("id") or ""), call["name"], dict(call["args"]), step.step)
                )
            if not message.tool_calls and text_of(message):
                step.said.append(text_of(message))
        elif isinstance(message, ToolMessage):
            step.results.append(
                ToolUse(
                    call_id=message.tool_call_id,
                    name=message.name or "?",
                    arguments={},
                    step=None,
                    result=text_of(message),
                    ok=message.status != "error",
                    result_step=step.step,
                )
            )


def paired_tools(steps: Sequence[Step]) -> list[ToolUse]:
    """Every tool call with its result (matched by call id), in the order asked."""
    results = {r.call_id: r for s in steps for r in s.results}
    paired = []
    for step in steps:
        for asked in step.asked:
            done = results.pop(asked.call_id, None)
            if done is not None:
                asked.result, asked.ok, asked.result_step = done.result, done.ok, done.result_step
            paired.append(asked)
    paired.extend(results.values())  # a result whose call is gone (pruned checkpoints)
    return paired
