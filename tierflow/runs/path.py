"""The path a run took on its graph (an agent's, or a workflow's: its steps' calls on
the steps), as an `Overlay` for the diagrams (`tierflow draw
FILE --run THREAD`, the HTML run report).

Read from what the thread kept, nothing re-run: its checkpoint history (which node
produced each checkpoint, and when), its latest state (model calls with their tokens
and cost, guard verdicts, tool results) and, for a governed agent, its audit rows
(denied and rejected calls)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import ToolMessage
from langgraph.graph import END, START

from tierflow import store as run_store
from tierflow.errors import CheckpointError
from tierflow.governance.audit import AuditEntry, audit
from tierflow.graphs.compile import build_graph
from tierflow.graphs.names import ACT, ROUTE, guard_node, model_node
from tierflow.graphs.overlay import NodeStats, Overlay
from tierflow.graphs.shape import Shape, shape_of
from tierflow.graphs.workflow import Workflow
from tierflow.graphs.workflow_compile import build_workflow
from tierflow.runs.load import load_declared
from tierflow.store import RunsTable
from tierflow.store.history import Entry, history
from tierflow.store.targets import describe, is_postgres

if TYPE_CHECKING:
    from tierflow.nodes.state import AgentState, GuardRecord, ModelCall

NOTE_CHARS = 64  # a note line's length at most, in a diagram
REFUSED = frozenset({"denied", "rejected"})  # audit decisions that stopped a call


@dataclass
class Walk:
    """The nodes a thread's checkpoints say ran: visits, seconds, taken edges."""

    visits: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)


def run_overlay(db: str | Path, thread: str) -> tuple[Shape, Overlay]:
    """`thread`'s graph (its agent loaded from the source the runs table recorded) and
    the path the thread took on it: how often each node ran, how long it took (the wall
    time from the checkpoint before it to its own: a node that paused for a review
    counts the wait), the tokens and cost of the model calls of each tier (the LLM
    router's own on `route`), how often each edge was taken, the guards that failed and
    the calls that were denied or rejected."""
    database = db if is_postgres(db) else Path(db)
    if isinstance(database, Path) and not database.exists():
        raise CheckpointError(f"no database at {database}")
    row = RunsTable(database).get(thread)
    if row is None:
        raise CheckpointError(f"unknown thread {thread!r} in {describe(database)}")
    agent, _ = load_declared(row["source"])
    workflow = isinstance(agent, Workflow)
    builder = build_workflow(agent) if isinstance(agent, Workflow) else build_graph(agent)
    shape = shape_of(builder)
    with run_store.open(database, create=False) as store:
        entries = with_branch_names(store, thread, history(store, thread))
        snapshot = agent.compile(store).get_state({"configurable": {"thread_id": thread}})
    values = cast("AgentState", snapshot.values)
    walked = walk(entries, finished=not snapshot.next and not snapshot.interrupts)
    refused = (
        [e for e in audit(database, thread) if e["decision"] in REFUSED]
        if agent.policy is not None
        else []
    )
    calls = list(values.get("calls", []))
    failed, notes = findings(shape, list(values.get("verdicts", [])), refused)
    if not workflow:  # a workflow's tools run inside its agent steps
        notes[ACT] = [*tool_notes(values, calls, refused), *notes.get(ACT, [])]
    overlay = Overlay(
        nodes=node_stats(walked, calls),
        edges=dict(walked.edges),
        failed=frozenset(failed),
        notes={node: tuple(lines) for node, lines in notes.items() if lines},
        title=f"thread {thread} · {row['status']} · {len(calls)} model calls · "
        f"${sum(c['cost_usd'] for c in calls):.5f}",
    )
    return shape, overlay


def with_branch_names(store: Any, thread: str, entries: list[Entry]) -> list[Entry]:
    """The entries with a parallel step's branches by name: the history knows a `Send`'s
    task by its index in the parent checkpoint's pending sends, which say its node."""
    found = list(store.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))
    values = {
        f.config["configurable"]["checkpoint_id"]: f.checkpoint["channel_values"] for f in found
    }
    parents = {
        f.config["configurable"]["checkpoint_id"]: f.parent_config["configurable"]["checkpoint_id"]
        for f in found
        if f.parent_config
    }
    named = []
    for entry in entries:
        sends = values.get(parents.get(entry.checkpoint_id, ""), {}).get("__pregel_tasks") or []
        parts = [
            str(getattr(sends[int(part)], "node", part))
            if part.isdigit() and int(part) < len(sends)
            else part
            for part in entry.node.split(",")
        ]
        named.append(replace(entry, node=",".join(parts)))
    return named


def walk(entries: Sequence[Entry], *, finished: bool) -> Walk:
    """Follow the checkpoints: each loop checkpoint names the node(s) that produced it,
    its time less the one before is theirs, and consecutive nodes are a taken edge. A
    request (an `input` checkpoint) starts at START, and the one before it had ended;
    the last one ended when the thread has nothing left to run (`finished`). A state
    edit or a fork (`update`, `fork`) breaks the chain: no edge is drawn across it."""
    walked = Walk()
    previous: list[str] = []
    before: datetime | None = None
    for entry in entries:
        at = _time(entry.ts)
        if entry.source != "loop":
            if entry.source == "input":
                walked.edges.update((node, END) for node in previous)
            previous, before = [], at
            continue
        nodes = [n for n in entry.node.split(",") if n and n != "-"]
        for node in nodes:
            walked.visits[node] += 1
            if before is not None and at is not None:
                walked.seconds[node] += (at - before).total_seconds() / len(nodes)
        walked.edges.update((a, b) for a in previous for b in nodes)
        previous, before = nodes, at
    if finished:
        walked.edges.update((node, END) for node in previous)
    return walked


def _time(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


def node_stats(walked: Walk, calls: Sequence[ModelCall]) -> dict[str, NodeStats]:
    """Each node that ran (START and END are no work): its visits and seconds, and the
    model calls' tokens and cost on the tier's node (the router's on `route`)."""
    spent: dict[str, list[ModelCall]] = {}
    for call in calls:
        node = ROUTE if call["tier"] == "router" else model_node(call["tier"])
        node = call.get("workflow_step", node)  # a workflow's calls: on their step
        spent.setdefault(node, []).append(call)
    stats: dict[str, NodeStats] = {}
    for node in sorted(set(walked.visits) - {START, END}):
        mine = spent.get(node, [])
        stats[node] = NodeStats(
            visits=walked.visits[node],
            seconds=round(walked.seconds[node], 6),
            input_tokens=sum(c["usage"]["input_tokens"] for c in mine),
            output_tokens=sum(c["usage"]["output_tokens"] for c in mine),
            cached_tokens=sum(c["usage"]["cached_tokens"] for c in mine),
            cost_usd=sum(c["cost_usd"] for c in mine),
        )
    return stats


def findings(
    shape: Shape, verdicts: Sequence[GuardRecord], refused: Sequence[AuditEntry]
) -> tuple[set[str], dict[str, list[str]]]:
    """The nodes where a guard failed or a call was refused, and a line for each: a
    guard node's own verdicts on it, a tool's guards (`run_sql:sql`) and refused tool
    calls on `act`, a refused model call on its tier."""
    failed: set[str] = set()
    notes: dict[str, list[str]] = {}
    for verdict in verdicts:
        if verdict["ok"]:
            continue
        node = guard_node(verdict["guard"])
        line = f"fail ({verdict['policy']}): {verdict['reason']}"
        if node not in shape.nodes:  # a tool's argument or output guard, applied by act
            node, line = ACT, f"{verdict['guard']} {line}"
        if node not in shape.nodes:  # a workflow's agent step's own guard: not drawn
            continue
        failed.add(node)
        notes.setdefault(node, []).append(_short(line))
    for entry in refused:
        node = ACT
        if entry["kind"] == "model":
            node = model_node(entry["name"].split(":", 1)[0])
        if node in shape.nodes:
            failed.add(node)
            line = f"{entry['decision']} {entry['name']}: {entry['reason']}"
            notes.setdefault(node, []).append(_short(line))
    return failed, notes


def tool_notes(
    values: AgentState, calls: Sequence[ModelCall], refused: Sequence[AuditEntry]
) -> list[str]:
    """What `act` ran: the tools called and how often, and each call that failed (one
    refused by governance is noted with its refusal instead)."""
    called = Counter(name for call in calls for name in call["tool_calls"])
    lines = []
    if called:
        lines.append(_short("calls: " + ", ".join(f"{n} ×{k}" for n, k in sorted(called.items()))))
    stopped = {entry["call_id"] for entry in refused}
    messages: list[Any] = list(values.get("messages", []))
    for message in messages:
        failed = isinstance(message, ToolMessage) and message.status == "error"
        if failed and message.tool_call_id not in stopped:
            text = str(message.content).removeprefix("Error: ")
            text = text.removeprefix(f"{message.name} failed: ")
            lines.append(_short(f"{message.name} error: {text}"))
    return lines


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= NOTE_CHARS else flat[: NOTE_CHARS - 1] + "…"
