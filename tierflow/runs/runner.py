"""Run and resume agent threads on a checkpoint database (what a run produced:
`report.py`; a resume after a review: `review.py`).

Every run streams with `durability="sync"`: a checkpoint is written before the next
step starts, so a process killed mid-run loses at most the step in flight, and
`resume()` continues from there. The runs table is updated at the start and the end.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from tierflow import store as run_store
from tierflow.errors import CheckpointError, LoadError, RunFailed, TierflowError
from tierflow.governance.budget import Budgets
from tierflow.governance.gate import WaitEvent
from tierflow.governance.global_limits import GlobalCapacity
from tierflow.governance.governor import Governor
from tierflow.governance.limits import Capacity
from tierflow.governance.policy import Principal
from tierflow.governance.tracing import RedactedTracing
from tierflow.graphs.names import ROUTE
from tierflow.graphs.spec import Agent
from tierflow.graphs.workflow import Declared
from tierflow.graphs.workflow_compile import run_limit
from tierflow.nodes.context import Governance, RunContext
from tierflow.runs.identity import acting_for, check_agent, principal_json
from tierflow.runs.load import checked_source, fingerprint, load_declared, provider_of_source
from tierflow.runs.report import RunReport, charge_from_ledger, report_from
from tierflow.runs.resources import provided_resources, run_resources
from tierflow.runs.review import recorded_review, review_command
from tierflow.runs.stepping import OnStream, OnUpdate, Streaming, adrive, drive
from tierflow.store import RunsTable, SqliteStore, leases
from tierflow.store.runs import RunRow
from tierflow.store.targets import describe, is_postgres
from tierflow.testing.faults import crash_point

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from tierflow.runs.stepping import Streamed
    from tierflow.store.postgres import PostgresStore

    # A run as a generator (`tierflow.runs.stepping`).
    Steps = Generator[Streamed, Mapping[str, Any] | None, RunReport]


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
            # On Postgres the caps and rates are shared by every worker on the store.
            self.capacity = capacity or (
                GlobalCapacity(agent.policy.limits, db=self.db)
                if isinstance(self.db, str)
                else Capacity(agent.policy.limits)
            )

    def run(self, request: str, thread: str) -> RunReport:
        """Send `request` to `thread` (new or existing) and run it to its end."""
        return drive(self._steps(thread, _asked(request)), self._streaming().stream)

    def resume(self, thread: str, decision: Mapping[str, Any] | None = None) -> RunReport:
        """Continue `thread` from its last checkpoint (a no-op for a finished thread).
        A thread paused for review needs the reviewer's `decision`, e.g.
        `{"action": "approve"}`, `{"action": "reject", "reason": ...}` or
        `{"action": "edit", "answer": ...}` (a `"reviewer"` names who decided; by
        default the operating-system user)."""
        return drive(self._steps(thread, None, _signed(decision)), self._streaming().stream)

    async def arun(self, request: str, thread: str) -> RunReport:
        """`run` on the caller's event loop (`astream`), so that one process runs many
        threads at once; the run store is used from worker threads. A cancelled run
        is marked `interrupted`, as Ctrl-C marks one, and stays resumable."""
        return await adrive(self._steps(thread, _asked(request)), self._streaming().astream)

    async def aresume(self, thread: str, decision: Mapping[str, Any] | None = None) -> RunReport:
        """`resume` on the caller's event loop, as `arun` runs."""
        return await adrive(self._steps(thread, None, _signed(decision)), self._streaming().astream)

    def queue(self, request: str, thread: str) -> None:
        """Record a new `thread` with `request` as `queued` (in the runs table, nothing
        run yet): `run(request, thread)` starts it, and so does `resume(thread)`, as it
        restarts a run killed before its first step."""
        self._check_source()
        self._record(thread, _asked(request), self.principal)
        self.runs.update(thread, status="queued")

    def _steps(
        self, thread: str, request: str | None, decision: Mapping[str, Any] | None = None
    ) -> Steps:
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
            check_agent(
                self.runs,
                thread,
                record,
                agent=self.agent.name,
                fingerprint=self.fingerprint,
                allow_changed=self.allow_changed_agent,
            )
            principal = acting_for(thread, record, self.principal)
            with run_resources(thread, self.agent.resources, self.resources) as resources:
                context = RunContext(
                    principal=principal, governance=self._governance(), resources=resources
                )
                graph = self.agent.compile(checkpointer=saver)  # a copy of the compiled graph
                payload = self._payload(thread, request, record, principal, graph, config, decision)
                streamed = (graph, payload, config, context)
                report = yield from self._execute(thread, streamed, principal)
        return report

    def _execute(self, thread: str, streamed: Streamed, principal: Principal | None) -> Steps:
        """Have the graph streamed to where it stops; record how it ended in the runs
        table."""
        graph, _, config, _ = streamed
        governor = self._governor(thread, principal)
        if governor is not None:
            governor.start_run()
        try:
            final = yield streamed
        except (KeyboardInterrupt, asyncio.CancelledError) as stopped:
            self.runs.update(thread, status="interrupted", error=_stopped_by(stopped))
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
        # A new request is sent as it is: the thread's state needs no reading.
        snapshot = None if request is not None else graph.get_state(config)
        if snapshot is not None and snapshot.created_at is not None:
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
            self._record(thread, request, principal)
            crash_point("runs.started")
        return {"messages": [HumanMessage(request)]}

    def _record(self, thread: str, request: str, principal: Principal | None) -> None:
        """The thread's row for a new request: running, with who it acts for, its
        agent's fingerprint and provider."""
        self.runs.start(
            thread,
            agent=self.agent.name,
            source=self.source or "",
            request=self._clean(request),
            principal=principal_json(principal),
            fingerprint=self.fingerprint,
            provider=provider_of_source(self.source or ""),
        )

    def _streaming(self) -> Streaming:
        return Streaming(self.on_update, self.on_stream)

    def _open(self, *, create: bool) -> SqliteStore | PostgresStore:
        """The checkpoint store (a governed agent's graph masks what it stores there)."""
        return run_store.open(self.db, create=create)

    def _clean(self, text: str) -> str:
        """Text for the runs table, with the policy's secrets masked (and any lone
        surrogate a step's output carried made `?`: the table stores UTF-8 text)."""
        text = text.encode("utf-8", "replace").decode("utf-8")
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


def _asked(request: str) -> str:
    if not request.strip():
        raise TierflowError("the request is empty")
    return request


def _signed(decision: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A review decision names its reviewer: by default the operating-system user."""
    if decision is not None and "reviewer" not in decision:
        return {**decision, "reviewer": getpass.getuser()}
    return decision


def _stopped_by(stopped: BaseException) -> str:
    """What an interrupted run's row says stopped it."""
    if isinstance(stopped, KeyboardInterrupt):
        return "stopped by Ctrl-C"
    return str(stopped) or "cancelled"


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
