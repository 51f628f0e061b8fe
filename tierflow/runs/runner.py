"""Run and resume agent threads on a checkpoint database (what a run produced:
`report.py`; a resume after a review: `review.py`).

Every run streams with `durability="sync"`: a checkpoint is written before the next
step starts, so a process killed mid-run loses at most the step in flight, and
`resume()` continues from there. The runs table is updated at the start and the end.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StreamMode

from tierflow import store as run_store
from tierflow.errors import AgentChanged, CheckpointError, LoadError, RunFailed, TierflowError
from tierflow.governance.audit import AuditLog, AuditRecord
from tierflow.governance.budget import Budgets
from tierflow.governance.gate import WaitEvent
from tierflow.governance.governor import Governor
from tierflow.governance.limits import Capacity
from tierflow.governance.policy import Principal
from tierflow.governance.tracing import RedactedTracing
from tierflow.graphs.names import ROUTE
from tierflow.graphs.spec import Agent
from tierflow.graphs.workflow import Declared
from tierflow.graphs.workflow_compile import run_limit
from tierflow.nodes.context import Governance, RunContext
from tierflow.runs.load import checked_source, fingerprint, load_declared, provider_of_source
from tierflow.runs.report import RunReport, charge_from_ledger, report_from
from tierflow.runs.resources import provided_resources, run_resources
from tierflow.runs.review import recorded_review, review_command
from tierflow.store import RunsTable, SqliteStore, leases
from tierflow.store.runs import RunRow
from tierflow.store.targets import describe, is_postgres
from tierflow.testing.faults import crash_point

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from tierflow.store.postgres import PostgresStore

OnUpdate = Callable[[str, Mapping[str, Any]], None]
# `(mode, chunk)` of LangGraph's "messages" (model tokens) and "custom" (retries) modes.
OnStream = Callable[[str, Any], None]


class Runner:
    """Runs one agent's (or workflow's) threads on the database at `db`.

    For an agent with a `policy`: `principal` is who the runs act for (recorded with the
    thread before its first step: a resume acts for the same one), `capacity` the
    process's concurrency caps and rate limits (one per process; by default one per
    runner), `on_wait` hears when a call waits for a slot (the runs table shows such a
    run as `waiting` meanwhile).

    `source` is where the agent comes from, as `load_agent` returns it (a factory's
    arguments and the provider included): recorded for `tierflow resume`, and checked to
    load to this agent when the first run or resume starts. Without one, only a `Runner`
    resumes the thread. `resources`: run resources the caller provides (and closes); the
    agent's others are built for each run or resume (`tierflow.runs.resources`).

    A run or resume holds the thread's lease while it executes (`ThreadBusy` if another
    process holds it). `allow_changed_agent` resumes a thread whose agent declaration
    changed since it started (refused otherwise; the override is audited)."""

    def __init__(
        self,
        agent: Declared,
        *,
        db: str | Path,
        source: str | None = None,
        resources: Mapping[str, Any] | None = None,
        on_update: OnUpdate | None = None,
        on_stream: OnStream | None = None,
        principal: Principal | None = None,
        capacity: Capacity | None = None,
        on_wait: Callable[[str, WaitEvent], None] | None = None,
        allow_changed_agent: bool = False,
        lease_ttl: float = leases.TTL_S,
    ) -> None:
        self.agent = agent
        self.db = db if is_postgres(db) else Path(db)  # a SQLite file or a postgresql:// URL
        self.source = source
        self.resources = provided_resources(agent, resources or {})
        self.source_checked = source is None
        self.on_update = on_update
        self.on_stream = on_stream
        self.principal = principal
        self.on_wait = on_wait
        self.allow_changed_agent = allow_changed_agent
        self.lease_ttl = lease_ttl
        self.runs = RunsTable(self.db)
        self.redactor = agent.policy.redaction if agent.policy is not None else None
        # A governed run's LangSmith traces are masked like its checkpoints.
        self.tracing = RedactedTracing(self.redactor) if self.redactor is not None else None
        self.fingerprint = fingerprint(agent)
        self.capacity = None
        if agent.policy is not None:
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
        `{"action": "edit", "answer": ...}` (a `"reviewer"` names who decided; by
        default the operating-system user)."""
        if decision is not None and "reviewer" not in decision:
            decision = {**decision, "reviewer": getpass.getuser()}
        return self._drive(thread, None, decision)

    def _drive(
        self, thread: str, request: str | None, decision: Mapping[str, Any] | None = None
    ) -> RunReport:
        self._check_source()
        config: RunnableConfig = {
            "configurable": {"thread_id": thread},
            "recursion_limit": run_limit(self.agent),
        }
        if self.tracing is not None:
            config["callbacks"] = self.tracing.callbacks()
        with (
            self._open(create=request is not None) as saver,
            leases.held(saver.db, thread, ttl=self.lease_ttl),
        ):
            record = self.runs.get(thread)
            if request is None and record is None:
                raise CheckpointError(f"unknown thread {thread!r} in {describe(self.db)}")
            self._check_agent(thread, record)
            principal = self._principal(thread, record)
            with run_resources(thread, self.agent.resources, self.resources) as resources:
                context = RunContext(
                    principal=principal, governance=self._governance(), resources=resources
                )
                graph = self.agent.compile(checkpointer=saver)  # a copy of the compiled graph
                payload = self._payload(thread, request, record, principal, graph, config, decision)
                report = self._execute(thread, graph, payload, config, context, principal)
        return report

    def _execute(  # noqa: PLR0917
        self,
        thread: str,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        payload: dict[str, Any] | Command[Any] | None,
        config: RunnableConfig,
        context: RunContext,
        principal: Principal | None,
    ) -> RunReport:
        """Run the graph to where it stops and record how it ended in the runs table."""
        governor = self._governor(thread, principal)
        if governor is not None:
            governor.start_run()
        try:
            final = self._stream(graph, payload, config, context)
        except KeyboardInterrupt:
            self.runs.update(thread, status="interrupted", error="stopped by Ctrl-C")
            raise
        except Exception as error:
            reason = self._clean(f"{type(error).__name__}: {error}")
            self.runs.update(thread, status="failed", error=reason)
            raise RunFailed(
                f"thread {thread!r} failed: {reason} (the last checkpoint is kept; "
                f"`tierflow resume {thread}` continues from it)"
            ) from error
        report = report_from(thread, graph.get_state(config))
        if final is not None and final.get("answer") is not None:
            report.answer = final["answer"]  # the checkpoint's copy may be masked
        if governor is not None:
            charge_from_ledger(report, Budgets(self.db).thread_spend(thread))
        self.runs.update(
            thread,
            status=report.status,
            answer=None if report.answer is None else self._clean(report.answer),
            error=None if report.error is None else self._clean(report.error),
            tiers=report.tiers,
            routes=self._masked(report.routes),
            verdicts=self._masked(report.verdicts),
            cost_usd=report.cost_usd,
            **report.usage,
        )
        return report

    def _check_source(self) -> None:
        """The source must load to this agent: checked when the runner's first run or
        resume starts, not when a resume would fail."""
        if self.source is not None and not self.source_checked:
            self.source = checked_source(self.source, self.agent)
            self.source_checked = True

    def _payload(  # noqa: PLR0917
        self,
        thread: str,
        request: str | None,
        record: RunRow | None,
        principal: Principal | None,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        config: RunnableConfig,
        decision: Mapping[str, Any] | None,
    ) -> dict[str, Any] | Command[Any] | None:
        """What to stream: a new request, the recorded request again (a run killed
        before its first checkpoint), or a resume."""
        snapshot = graph.get_state(config)
        if request is None and snapshot.created_at is not None:
            budget_spent = snapshot.values.get("status") == "budget_exceeded"
            if budget_spent and decision is None and isinstance(self.agent, Agent):
                _continue_after_budget(graph, config)
            snapshot = graph.get_state(config)
            if decision is None and snapshot.interrupts and self.agent.policy is not None:
                decision = recorded_review(self.db, thread, snapshot)
            command = review_command(thread, snapshot, decision)
            self.runs.update(thread, status="running", error=None)
            return command
        if request is None:
            assert record is not None
            if decision is not None:
                raise TierflowError(f"thread {thread!r} is not waiting for a review")
            self.runs.update(thread, status="running", error=None)
            request = record["request"]  # killed before its first checkpoint: start again
        else:
            self.runs.start(
                thread,
                agent=self.agent.name,
                source=self.source or "",
                request=self._clean(request),
                principal=_principal_json(principal),
                fingerprint=self.fingerprint,
                provider=provider_of_source(self.source or ""),
            )
            crash_point("runs.started")
        return {"messages": [HumanMessage(request)]}

    def _stream(
        self,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        payload: dict[str, Any] | Command[Any] | None,
        config: RunnableConfig,
        context: RunContext,
    ) -> Mapping[str, Any] | None:
        """Stream the run; its last state as held in memory (None if it ran no step)."""
        modes: list[StreamMode] = ["updates", "values"]
        if self.on_stream is not None:
            modes += ["messages", "custom"]
        final: Mapping[str, Any] | None = None
        chunks = graph.stream(
            payload, config, context=context, stream_mode=modes, durability="sync"
        )
        for mode, chunk in chunks:
            if mode == "values" and isinstance(chunk, Mapping):
                final = chunk
            elif mode == "updates" and isinstance(chunk, Mapping):
                for node, update in chunk.items():
                    if self.on_update is not None and isinstance(update, Mapping):
                        self.on_update(node, update)
            elif mode != "values" and self.on_stream is not None:
                self.on_stream(mode, chunk)
        return final

    def _check_agent(self, thread: str, record: RunRow | None) -> None:
        """A thread runs the agent it started with: a changed declaration is refused
        (or, with `allow_changed_agent`, audited)."""
        if record is None or not record["fingerprint"]:
            return
        if record["fingerprint"] == self.fingerprint:
            return
        if not self.allow_changed_agent:
            raise AgentChanged(
                f"thread {thread!r} was started by agent {record['agent']!r} "
                f"(fingerprint {record['fingerprint'][:12]}); {self.agent.name!r} as loaded "
                f"now is {self.fingerprint[:12]}: its declaration changed. Resume with "
                "--allow-changed-agent to continue anyway (audited)"
            )
        AuditLog(self.db).write(
            AuditRecord(
                event=f"agent_changed:{thread}:{record['fingerprint']}:{self.fingerprint}",
                thread=thread,
                step=-1,
                principal=(record["principal"] or {}).get("id"),
                agent=self.agent.name,
                kind="run",
                name="agent_changed",
                decision="allowed",
                outcome="ok",
                reason=f"fingerprint {record['fingerprint'][:12]} -> {self.fingerprint[:12]}",
            )
        )
        self.runs.update(thread, fingerprint=self.fingerprint)

    def _principal(self, thread: str, record: RunRow | None) -> Principal | None:
        """Who the run acts for: the one recorded with the thread, never another."""
        kept = None if record is None else record["principal"]
        if kept is None:
            return self.principal
        recorded = Principal.model_validate(kept)
        if self.principal is not None and self.principal != recorded:
            raise TierflowError(
                f"thread {thread!r} acts for principal {recorded.id!r}; a run can't "
                f"change who it acts for (given {self.principal.id!r})"
            )
        return recorded

    def _open(self, *, create: bool) -> SqliteStore | PostgresStore:
        """The checkpoint store (a governed agent's graph masks what it stores there)."""
        return run_store.open(self.db, create=create)

    def _clean(self, text: str) -> str:
        """Text for the runs table, with the policy's secrets masked."""
        return text if self.redactor is None else self.redactor.redact_text(text)

    def _masked(self, records: list[Any]) -> list[Any]:
        """Route decisions or guard verdicts for the runs table, their reasons masked."""
        return records if self.redactor is None else list(self.redactor.redact(records))

    def _governance(self) -> Governance | None:
        """What a governed run's nodes reach through the run context: this runner's
        database, capacity and wait reporting."""
        if self.agent.policy is None:
            return None
        return Governance(self.db, capacity=self.capacity, on_wait=self._waiting)

    def _governor(self, thread: str, principal: Principal | None) -> Governor | None:
        if self.agent.policy is None:
            return None
        return Governor(
            self.agent.policy,
            self.db,
            agent=self.agent.name,
            thread=thread,
            principal=principal,
            capacity=self.capacity,
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


def resume_thread(
    thread: str,
    db: str | Path,
    on_update: OnUpdate | None = None,
    *,
    on_stream: OnStream | None = None,
    provider: str | None = None,
    decision: Mapping[str, Any] | None = None,
    allow_changed_agent: bool = False,
) -> RunReport:
    """Resume `thread`, loading its agent from the source recorded in the runs table
    (a factory called again with the arguments recorded there; the provider recorded
    there, unless `provider` names another)."""
    database = db if is_postgres(db) else Path(db)
    if isinstance(database, Path) and not database.exists():
        raise CheckpointError(f"no database at {database}")
    row = RunsTable(database).get(thread)
    if row is None:
        raise CheckpointError(f"unknown thread {thread!r} in {describe(database)}")
    if not row["source"]:
        raise LoadError(
            f"thread {thread!r} records no source to load its agent from (its Runner was "
            f"given none): resume it in Python, Runner(agent, db=...).resume({thread!r})"
        )
    agent, source = load_declared(row["source"], provider)
    runner = Runner(
        agent,
        db=database,
        source=source,
        on_update=on_update,
        on_stream=on_stream,
        allow_changed_agent=allow_changed_agent,
    )
    return runner.resume(thread, decision)
