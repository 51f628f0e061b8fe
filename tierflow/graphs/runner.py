"""Run, resume and summarise agent threads on a checkpoint database.

Every run streams with `durability="sync"`: a checkpoint is written before the next
step starts, so a process killed mid-run loses at most the step in flight, and
`resume()` continues from there. The runs table is updated at the start and the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Interrupt, StateSnapshot, StreamMode

from tierflow import checkpoints
from tierflow.checkpoints import RunsTable, SqliteStore
from tierflow.checkpoints.sqlite import open_database
from tierflow.checkpoints.targets import describe, is_postgres
from tierflow.errors import CheckpointError, TierflowError
from tierflow.governance.gate import WaitEvent
from tierflow.governance.limits import Capacity
from tierflow.governance.policy import Principal
from tierflow.governance.redact import RedactingSerializer
from tierflow.graphs.load import load_agent
from tierflow.graphs.names import ROUTE
from tierflow.graphs.spec import Agent
from tierflow.models.price import TokenUsage
from tierflow.nodes.governed import Governance, governance_for
from tierflow.nodes.state import GuardRecord, ModelCall, PlanStep, RouteDecision

if TYPE_CHECKING:
    from langgraph.checkpoint.base import CheckpointTuple
    from langgraph.graph.state import CompiledStateGraph

    from tierflow.checkpoints.postgres import PostgresStore

OnUpdate = Callable[[str, Mapping[str, Any]], None]
# `(mode, chunk)` of LangGraph's "messages" (model tokens) and "custom" (retries) modes.
OnStream = Callable[[str, Any], None]


class RunFailed(TierflowError):
    """A run stopped on an error; its last checkpoint is intact and resumable."""


@dataclass
class RunReport:
    """What a run produced, read from its latest checkpoint."""

    thread: str
    status: str
    answer: str | None
    objective: str
    route: RouteDecision | None
    routes: list[RouteDecision]
    plan: list[PlanStep]
    steps: list[ModelCall]
    verdicts: list[GuardRecord]
    usage: TokenUsage
    cost_usd: float
    error: str | None = None
    tiers: list[str] = field(default_factory=list)
    # What an interrupted run waits for: each pending review's payload.
    review: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def report_from(thread: str, snapshot: StateSnapshot) -> RunReport:
    values: Mapping[str, Any] = snapshot.values
    calls: list[ModelCall] = list(values.get("calls", []))
    usage = TokenUsage(
        input_tokens=sum(c["usage"]["input_tokens"] for c in calls),
        cached_tokens=sum(c["usage"]["cached_tokens"] for c in calls),
        output_tokens=sum(c["usage"]["output_tokens"] for c in calls),
        reasoning_tokens=sum(c["usage"]["reasoning_tokens"] for c in calls),
    )
    status = str(values.get("status", "running"))
    if snapshot.interrupts:
        status = "interrupted"
    return RunReport(
        thread=thread,
        status=status,
        answer=values.get("answer"),
        objective=str(values.get("objective", "")),
        route=values.get("route"),
        routes=list(values.get("routes", [])),
        plan=list(values.get("plan", [])),
        steps=calls,
        verdicts=list(values.get("verdicts", [])),
        usage=usage,
        cost_usd=sum(c["cost_usd"] for c in calls),
        error=values.get("error"),
        tiers=sorted({c["tier"] for c in calls}),
        review=[item.value for item in snapshot.interrupts],
    )


class Runner:
    """Runs one agent's threads on the database at `db`.

    For an agent with a `policy`: `principal` is who the runs act for (kept with each
    thread: a resume acts for the same one), `capacity` the process's concurrency caps
    and rate limits (one per process; by default one per runner), `on_wait` hears when
    a call waits for a slot (the runs table shows such a run as `waiting` meanwhile)."""

    def __init__(
        self,
        agent: Agent,
        *,
        db: str | Path,
        source: str,
        on_update: OnUpdate | None = None,
        on_stream: OnStream | None = None,
        principal: Principal | None = None,
        capacity: Capacity | None = None,
        on_wait: Callable[[str, WaitEvent], None] | None = None,
    ) -> None:
        self.agent = agent
        self.db = db if is_postgres(db) else Path(db)  # a SQLite file or a postgresql:// URL
        self.source = source
        self.on_update = on_update
        self.on_stream = on_stream
        self.principal = principal
        self.on_wait = on_wait
        self.runs = RunsTable(self.db)
        self.redactor = agent.policy.redaction if agent.policy is not None else None
        self.capacity = None
        if agent.policy is not None:
            if is_postgres(self.db):
                raise TierflowError(
                    f"agent {agent.name!r} declares a policy: its audit log, budgets and "
                    "side effects need a SQLite runs database (not built for Postgres yet)"
                )
            self.capacity = capacity or Capacity(agent.policy.limits)

    def run(self, request: str, thread: str) -> RunReport:
        """Send `request` to `thread` (new or existing) and run it to its end."""
        if not request.strip():
            raise TierflowError("the request is empty")
        return self._drive(thread, request)

    def resume(self, thread: str, decision: Mapping[str, Any] | None = None) -> RunReport:
        """Continue `thread` from its last checkpoint (a no-op for a finished thread).
        A thread paused for review needs the reviewer's `decision`, e.g.
        `{"action": "approve"}`, `{"action": "reject", "reason": ...}` or
        `{"action": "edit", "answer": ...}`."""
        return self._drive(thread, None, decision)

    def _drive(
        self, thread: str, request: str | None, decision: Mapping[str, Any] | None = None
    ) -> RunReport:
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        payload: dict[str, Any] | Command[Any] | None = None
        with self._open(create=request is not None) as saver:
            existing = saver.get_tuple(config)
            governance = self._governance(thread, existing)
            graph = self.agent.compile(checkpointer=saver, governance=governance)
            if request is not None:
                payload = {"messages": [HumanMessage(request)]}
                if governance is not None:
                    payload["principal"] = _principal_json(governance.principal)
                self.runs.start(
                    thread, agent=self.agent.name, source=self.source, request=self._clean(request)
                )
            elif existing is None:
                raise CheckpointError(f"thread {thread!r} has no checkpoint in {describe(self.db)}")
            else:
                snapshot = graph.get_state(config)
                if snapshot.values.get("status") == "budget_exceeded" and decision is None:
                    _continue_after_budget(graph, config)
                payload = review_command(thread, graph.get_state(config), decision)
            if governance is not None:
                governance.governor(thread).start_run()
            modes: list[StreamMode] = ["updates"]
            if self.on_stream is not None:
                modes += ["messages", "custom"]
            try:
                for mode, chunk in graph.stream(
                    payload, config, stream_mode=modes, durability="sync"
                ):
                    if mode == "updates" and isinstance(chunk, Mapping):
                        for node, update in chunk.items():
                            if self.on_update is not None and isinstance(update, Mapping):
                                self.on_update(node, update)
                    elif self.on_stream is not None:
                        self.on_stream(mode, chunk)
            except Exception as error:
                reason = self._clean(f"{type(error).__name__}: {error}")
                self.runs.update(thread, status="failed", error=reason)
                raise RunFailed(
                    f"thread {thread!r} failed: {reason} (the last checkpoint is kept; "
                    f"`tierflow resume {thread}` continues from it)"
                ) from error
            report = report_from(thread, graph.get_state(config))
        self.runs.update(
            thread,
            status=report.status,
            answer=None if report.answer is None else self._clean(report.answer),
            error=None if report.error is None else self._clean(report.error),
            tiers=report.tiers,
            routes=report.routes,
            verdicts=report.verdicts,
            cost_usd=report.cost_usd,
            **report.usage,
        )
        return report

    def _open(self, *, create: bool) -> SqliteStore | PostgresStore:
        """The checkpoint store; a governed agent's masks its policy's secrets."""
        if self.redactor is None or not isinstance(self.db, Path):
            return checkpoints.open(self.db, create=create)
        serde = RedactingSerializer(self.redactor)
        return SqliteStore(open_database(self.db, create=create), self.db, serde=serde)

    def _clean(self, text: str) -> str:
        """Text for the runs table, with the policy's secrets masked."""
        return text if self.redactor is None else self.redactor.redact_text(text)

    def _governance(self, thread: str, existing: CheckpointTuple | None) -> Governance | None:
        policy = self.agent.policy
        if policy is None or not isinstance(self.db, Path) or self.capacity is None:
            return None
        principal = self.principal
        kept = None if existing is None else existing.checkpoint["channel_values"].get("principal")
        if kept is not None:
            recorded = Principal.model_validate(kept)
            if principal is not None and principal != recorded:
                raise TierflowError(
                    f"thread {thread!r} acts for principal {recorded.id!r}; a run can't "
                    f"change who it acts for (given {principal.id!r})"
                )
            principal = recorded
        return governance_for(
            policy,
            self.db,
            agent=self.agent.name,
            principal=principal,
            capacity=self.capacity,
            on_wait=self._waiting,
        )

    def _waiting(self, thread: str, event: WaitEvent) -> None:
        """A call of `thread` waits for a slot (or got it): the runs table says so."""
        self.runs.update(thread, status="waiting" if event.phase == "waiting" else "running")
        if self.on_wait is not None:
            self.on_wait(thread, event)


def _principal_json(principal: Principal | None) -> dict[str, Any] | None:
    return None if principal is None else principal.model_dump(mode="json")


def _continue_after_budget(
    graph: CompiledStateGraph[Any, Any, Any, Any], config: RunnableConfig
) -> None:
    """A run that ended `budget_exceeded` continues with the model call it could not
    afford: back to running, as if the route had just chosen its tier again."""
    graph.update_state(config, {"status": "running", "error": None}, as_node=ROUTE)


def review_command(
    thread: str, snapshot: StateSnapshot, decision: Mapping[str, Any] | None
) -> Command[Any] | None:
    """The resume payload for a thread: None to continue, or the reviewer's decision for
    every pending interrupt. A decision without a pause, or a pause without a decision,
    is an error (nothing is run)."""
    pending = snapshot.interrupts
    if decision is None and pending:
        raise TierflowError(
            f"thread {thread!r} is waiting for a review ({_describe_pending(pending)}): resume "
            "it with --approve, --reject REASON or --edit FILE"
        )
    if decision is None:
        return None
    if not pending:
        raise TierflowError(f"thread {thread!r} is not waiting for a review; nothing to decide")
    if len(pending) == 1:
        return Command(resume=dict(decision))
    return Command(resume={item.id: dict(decision) for item in pending})


def _describe_pending(pending: Sequence[Interrupt]) -> str:
    parts = []
    for item in pending:
        value = item.value if isinstance(item.value, Mapping) else {}
        if value.get("kind") == "tool_review":
            held = ", ".join(str(call.get("tool")) for call in value.get("calls", []))
            parts.append(f"tool calls held for approval: {held}")
        else:
            parts.append(f"answer held by guard {value.get('guard', '?')!r}")
    return ", ".join(parts)


def resume_thread(
    thread: str,
    db: str | Path,
    on_update: OnUpdate | None = None,
    *,
    on_stream: OnStream | None = None,
    provider: str | None = None,
    decision: Mapping[str, Any] | None = None,
) -> RunReport:
    """Resume `thread`, loading its agent from the source recorded in the runs table
    (with the provider recorded there, unless `provider` names another)."""
    database = db if is_postgres(db) else Path(db)
    if isinstance(database, Path) and not database.exists():
        raise CheckpointError(f"no database at {database}")
    row = RunsTable(database).get(thread)
    if row is None:
        raise CheckpointError(f"unknown thread {thread!r} in {describe(database)}")
    agent, source = load_agent(row["source"], provider)
    runner = Runner(agent, db=database, source=source, on_update=on_update, on_stream=on_stream)
    return runner.resume(thread, decision)
