"""A thread read back from its checkpoints: what `tierflow history` and `inspect` show.

`history` lists the checkpoints themselves (step, node, time, size); `inspect` diffs
each checkpoint's agent state against its parent's and tells what happened at that
step: the route decided, the model call (tier, tokens with the cached input, cost), the
tool calls and their results, the guard verdicts, and the reminder — objective, plan,
progress — as the model saw it; then the thread's calls summed per tier. A workflow's
thread shows each call's step (the branches of a parallel step by name) and the
workflow's part of its reminder, then its calls summed per step too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import AIMessage, ToolMessage
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tierflow.cli.by_step import by_step_table
from tierflow.cli.by_tier import summary_table
from tierflow.cli.console import short
from tierflow.graphs.names import ESCALATED_SUFFIX, display
from tierflow.nodes.remind import STATUS_MARK, build_reminder
from tierflow.nodes.state import AgentState, ModelCall, PlanStep
from tierflow.runs.report import StepTotals, TierSummary, run_tiers, step_summary
from tierflow.store.history import Entry, history

if TYPE_CHECKING:
    from tierflow.store.history import Store

APPENDED = ("routes", "calls", "verdicts", "messages")  # keys that only grow


@dataclass
class Event:
    kind: str
    text: str


@dataclass
class Moment:
    """One checkpoint of the thread and what the step that produced it did."""

    step: int | None
    node: str
    checkpoint_id: str
    events: list[Event] = field(default_factory=list)


def _summary(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a child checkpoint is compared with: the lengths of the growing lists and
    the values that are replaced (so the whole history is never held at once)."""
    found: dict[str, Any] = {key: len(values.get(key) or []) for key in APPENDED}
    for key in ("objective", "plan", "status", "answer"):
        found[key] = values.get(key)
    return found


def _events(before: Mapping[str, Any], checkpointed: Mapping[str, Any]) -> list[Event]:
    # Read as the one state description: a key the state doesn't have is a type error.
    values = cast(AgentState, checkpointed)

    def new(key: str) -> list[Any]:
        items: list[Any] = list(checkpointed.get(key) or [])
        return items[before.get(key, 0) :] if before.get(key, 0) <= len(items) else items

    events: list[Event] = []
    if values.get("objective") and values.get("objective") != before.get("objective"):
        # A workflow keeps the user's words apart from its objective.
        events.append(
            Event("request", short(str(checkpointed.get("request") or values["objective"])))
        )
    for route in new("routes"):
        events.append(
            Event("route", f"→ {route['tier']} ({route['router']}: {short(route['reason'], 70)})")
        )
    for call in new("calls"):
        events += _call_events(call, str(values.get("objective", "")), before.get("plan") or [])
    for message in new("messages"):
        if isinstance(message, AIMessage):
            for tool_call in message.tool_calls:
                arguments = json.dumps(tool_call["args"], ensure_ascii=False)
                events.append(Event("tool call", short(f"{tool_call['name']}({arguments})", 90)))
        elif isinstance(message, ToolMessage):
            mark = "failed" if message.status == "error" else "ok"
            text = short(str(message.content).removeprefix("Error: "), 80)
            events.append(Event("tool result", f"{message.name} {mark}: {text}"))
    for verdict in new("verdicts"):
        outcome = "pass" if verdict["ok"] else f"fail: {short(verdict['reason'], 80)}"
        events.append(Event("guard", f"{verdict['guard']} {outcome}"))
    if values.get("plan") and values.get("plan") != before.get("plan"):
        marks = "  ".join(f"{STATUS_MARK[s['status']]} {s['step']}" for s in values["plan"])
        events.append(Event("plan", marks))
    if values.get("status") != before.get("status") and values.get("status") not in (
        None,
        "running",
    ):
        answer = values.get("answer")
        events.append(
            Event("status", f"{values['status']}" + (f": {short(answer)}" if answer else ""))
        )
    return events


def _call_events(call: ModelCall, objective: str, plan: list[PlanStep]) -> list[Event]:
    """A model call: the reminder its input ended with, rebuilt as the model node built
    it (a workflow step's: the workflow's part), then the call, named by its step."""
    step = call.get("workflow_step")
    if step is None:
        reminder = build_reminder(objective, plan, call["step"] - 1, None)
    else:
        reminder = _workflow_reminder(objective, plan, step.removesuffix(ESCALATED_SUFFIX))
    usage = call["usage"]
    model = (
        f"{call['tier']} · {call['model']} · {usage['input_tokens']:,} in "
        f"({usage['cached_tokens']:,} cached) / {usage['output_tokens']:,} out "
        f"tokens · ${call['cost_usd']:.5f}"
    )
    return [
        Event("reminder", reminder),
        Event("model", model if step is None else f"{step}: {model}"),
    ]


def _workflow_reminder(objective: str, plan: Sequence[Mapping[str, Any]], step: str) -> str:
    """The workflow's part of a step's reminder: the objective, its steps as they stood
    (this one in progress), the step (`tierflow.nodes.remind.workflow_reminder`)."""
    lines = [f"Workflow: {objective}", "Steps:"]
    lines += [
        f"  {n}. {STATUS_MARK.get('in_progress' if s['step'] == step else s['status'], '[ ]')} "
        f"{s['step']}"
        for n, s in enumerate(plan, start=1)
    ]
    lines.append(f"You are doing step {step!r}.")
    return "\n".join(lines)


def _latest(store: Store, thread: str) -> AgentState:
    found = store.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    return cast(AgentState, found.checkpoint["channel_values"] if found is not None else {})


def thread_tiers(store: Store, thread: str) -> TierSummary:
    """The thread's model calls (latest checkpoint) summed per tier, cached share included."""
    return run_tiers(_latest(store, thread))


def thread_steps(store: Store, thread: str) -> list[StepTotals]:
    """A workflow thread's model calls (latest checkpoint) summed per step; empty for an
    agent's."""
    return step_summary(list(_latest(store, thread).get("calls", [])))


def _node(node: str, parent: Mapping[str, Any]) -> str:
    """The nodes that made a checkpoint, by name: a branch of a parallel step (a `Send`)
    is known by its index in the parent checkpoint's pending sends."""
    sends = parent.get("__pregel_tasks") or []
    names = []
    for part in node.split(","):
        if part.isdigit() and int(part) < len(sends):
            names.append(str(getattr(sends[int(part)], "node", part)))
        elif part:  # empty: the reviewer's decision, written as no node's
            names.append(part)
    return display(",".join(names) or node)


def inspect(store: Store, thread: str) -> list[Moment]:
    """The thread's steps, oldest first, each with what it did."""
    entries: dict[str, Entry] = {e.checkpoint_id: e for e in history(store, thread)}
    tuples = list(store.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))
    summaries: dict[str, dict[str, Any]] = {}
    values_of = {
        found.config["configurable"]["checkpoint_id"]: found.checkpoint["channel_values"]
        for found in tuples
    }
    moments: list[Moment] = []
    for found in reversed(tuples):
        checkpoint_id = found.config["configurable"]["checkpoint_id"]
        parent = found.parent_config["configurable"]["checkpoint_id"] if found.parent_config else ""
        values = found.checkpoint["channel_values"]
        entry = entries.get(checkpoint_id)
        moments.append(
            Moment(
                step=entry.step if entry else None,
                node=_node(entry.node, values_of.get(parent, {})) if entry else "?",
                checkpoint_id=checkpoint_id,
                events=_events(summaries.get(parent, {}), values),
            )
        )
        summaries[checkpoint_id] = _summary(values)
    return moments


def _time(ts: str) -> str:
    try:
        return datetime.fromisoformat(ts).strftime("%m-%d %H:%M:%S")
    except ValueError:
        return ts


def history_table(thread: str, entries: Sequence[Entry]) -> Table:
    table = Table(
        title=f"thread {thread}: {len(entries)} checkpoints", box=box.SIMPLE, pad_edge=False
    )
    table.add_column("step", justify="right", no_wrap=True, min_width=4)
    table.add_column("node", no_wrap=True, min_width=10)
    # Whole, so it can be copied into `tierflow fork --at` (its last 6+ characters do).
    table.add_column("checkpoint", no_wrap=True, min_width=36)
    table.add_column("UTC")
    table.add_column("bytes", justify="right", no_wrap=True, min_width=6)
    for entry in entries:
        table.add_row(
            "" if entry.step is None else str(entry.step),
            display(entry.node),
            entry.checkpoint_id,
            _time(entry.ts),
            f"{entry.size:,}",
        )
    total = sum(entry.size for entry in entries)
    table.add_row("", "[bold]total[/]", "", "", f"{total:,}", end_section=True)
    return table


def print_timeline(
    console: Console,
    thread: str,
    moments: Sequence[Moment],
    tiers: TierSummary,
    steps: Sequence[StepTotals] = (),
) -> None:
    """The thread's steps, each with what it did, then its calls summed per tier (and
    per workflow step)."""
    console.print(f"[bold]thread {thread}[/] · {len(moments)} checkpoints")
    for moment in moments:
        if not moment.events:
            continue
        step = "" if moment.step is None else f"{moment.step:>3}"
        console.print(
            f"[dim]{step}[/] [bold]{escape(moment.node)}[/] [dim]{moment.checkpoint_id}[/]"
        )
        for event in moment.events:
            lines = event.text.splitlines() or [""]
            console.print(f"      [cyan]{event.kind}[/] {escape(lines[0])}")
            for line in lines[1:]:
                console.print(f"        {escape(line)}")
    console.print(summary_table(tiers, f"thread {thread}: cost per tier"))
    if steps:
        console.print(by_step_table(steps, f"thread {thread}: cost per step"))


def to_json(value: Sequence[Entry] | Sequence[Moment]) -> str:
    return json.dumps([asdict(item) for item in value], ensure_ascii=False)


def inspect_json(
    thread: str,
    moments: Sequence[Moment],
    tiers: TierSummary,
    steps: Sequence[StepTotals] = (),
) -> str:
    """`inspect --json`: the thread, its steps and its calls summed per tier and per
    workflow step (`by_step`, as in `run --json`; empty for an agent)."""
    document = {
        "thread": thread,
        "moments": [asdict(m) for m in moments],
        "by_tier": tiers,
        "by_step": list(steps),
    }
    return json.dumps(document, ensure_ascii=False)
