"""Many threads of one agent at once, in one process: `tierflow batch`.

Each request of a batch is a thread of its own. Before anything runs, every one is
recorded `queued` in the runs table (`Runner.queue`), so each stays resumable —
`tierflow resume THREAD` — whatever becomes of the process. Then they run on one event
loop (`Runner.arun`), at most `concurrency` at a time and within the policy's limits:
one `Capacity` (caps and rate limits) for the whole batch. A thread's `Outcome` is
reported as soon as it ends.

`stop()` — Ctrl-C, when `run()` runs on the main thread — starts no more threads and
cancels the running ones: their rows say `interrupted`, and every thread without an
outcome then gets one from its row (`cancelled` when it did not end). A second Ctrl-C
raises `KeyboardInterrupt` at once.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tierflow.errors import ThreadBusy, TierflowError
from tierflow.governance.gate import WaitEvent
from tierflow.governance.limits import Capacity
from tierflow.governance.policy import Principal
from tierflow.graphs.workflow import Declared
from tierflow.runs.inputs import Request
from tierflow.runs.report import RunReport
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable, database
from tierflow.store.runs import RunRow
from tierflow.store.targets import describe, is_postgres

STOPPED = "stopped by Ctrl-C"
UNFINISHED = frozenset({"queued", "running", "waiting", "crashed"})


@dataclass(frozen=True)
class Outcome:
    """How one request of a batch ended: a line of the results. `tokens` counts input
    and output tokens (cached and reasoning ones included)."""

    line: int
    thread: str
    status: str
    answer: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, request: Request, report: RunReport) -> Outcome:
        usage = report.usage
        return cls(
            request.line,
            request.thread,
            report.status,
            report.answer,
            report.cost_usd,
            usage["input_tokens"] + usage["output_tokens"],
            report.error,
        )

    @classmethod
    def left(cls, request: Request, row: RunRow | None, reason: str, db: str | Path) -> Outcome:
        """The outcome of a thread the batch stopped (for `reason`), from its row:
        `cancelled` unless it ended meanwhile."""
        stopped = row is not None and row["status"] == "interrupted" and row["error"] == reason
        if row is None or row["status"] in UNFINISHED or stopped:
            resume = shlex.join(["tierflow", "resume", request.thread, "--db", describe(db)])
            error = f"{reason}; continue it with: {resume}"
            return cls(request.line, request.thread, "cancelled", error=error)
        tokens = row["input_tokens"] + row["output_tokens"]
        return cls(
            request.line,
            request.thread,
            row["status"],
            row["answer"],
            row["cost_usd"],
            tokens,
            row["error"],
        )


@dataclass(frozen=True)
class Counts:
    """A batch's progress at one moment. `running` excludes the threads `waiting` for
    a concurrency slot or a rate limit; `ended` counts final statuses."""

    total: int
    running: int
    waiting: int
    ended: Mapping[str, int]
    tokens: int
    cost_usd: float

    @property
    def finished(self) -> int:
        return sum(self.ended.values())

    @property
    def queued(self) -> int:
        return self.total - self.finished - self.running - self.waiting


@dataclass
class Tally:
    """A batch's live counts, updated from the event loop and from worker threads."""

    total: int
    running: set[str] = field(default_factory=set)
    waits: Counter[str] = field(default_factory=Counter)  # calls waiting, per thread
    ended: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    cost_usd: float = 0.0
    peak_waiting: int = 0  # the most threads waiting at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, thread: str) -> None:
        with self.lock:
            self.running.add(thread)

    def finished(self, outcome: Outcome) -> None:
        with self.lock:
            self.running.discard(outcome.thread)
            self.waits.pop(outcome.thread, None)
            self.ended[outcome.status] += 1

    def on_wait(self, thread: str, event: WaitEvent) -> None:
        with self.lock:
            self.waits[thread] += 1 if event.phase == "waiting" else -1
            if self.waits[thread] <= 0:
                del self.waits[thread]
            self.peak_waiting = max(self.peak_waiting, len(self.waits))

    def on_update(self, node: str, update: Mapping[str, Any]) -> None:
        """A model call's tokens and cost, as its node reports them."""
        calls = update.get("calls")
        if not isinstance(calls, list):
            return
        with self.lock:
            for call in calls:
                usage = call.get("usage", {})
                self.tokens += usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
                self.cost_usd += call.get("cost_usd", 0.0)

    def counts(self) -> Counts:
        with self.lock:
            waiting = len(self.waits.keys() & self.running)
            return Counts(
                total=self.total,
                running=len(self.running) - waiting,
                waiting=waiting,
                ended=dict(self.ended),
                tokens=self.tokens,
                cost_usd=self.cost_usd,
            )


class Batch:
    """The threads of `requests`, run by `agent` on the database at `db` (see the
    module). `on_outcome` hears each thread's outcome, on the event loop, as it ends;
    `capacity` is the batch's caps and rate limits (by default the first runner's:
    the policy's limits, shared by every worker on a Postgres store)."""

    def __init__(
        self,
        agent: Declared,
        requests: Sequence[Request],
        *,
        db: str | Path,
        source: str | None = None,
        concurrency: int = 8,
        capacity: Capacity | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise TierflowError(f"concurrency must be at least 1, not {concurrency}")
        self.agent = agent
        self.requests = list(requests)
        self.db = db if is_postgres(db) else Path(db)
        self.source = source
        self.concurrency = concurrency
        self.capacity = capacity
        self.on_outcome = on_outcome
        self.tally = Tally(len(self.requests))
        self.outcomes: dict[str, Outcome] = {}
        self.stopped = False
        self.reason = ""
        self._runners: dict[str, Runner] = {}
        self._workers: list[asyncio.Task[None]] = []

    def runner(self, principal: Principal | None) -> Runner:
        """The batch's runner for `principal` (one per principal, one capacity)."""
        key = "" if principal is None else principal.model_dump_json()
        if key not in self._runners:
            runner = Runner(
                self.agent,
                db=self.db,
                source=self.source,
                principal=principal,
                capacity=self.capacity,
                on_update=self.tally.on_update,
                on_wait=self.tally.on_wait,
            )
            self.capacity = self.capacity or runner.capacity
            self._runners[key] = runner
        return self._runners[key]

    def run(self) -> list[Outcome]:
        """Queue every request's thread, then run them all (see the module); the
        outcomes in the order of the requests."""
        with database.using(self.db):  # one connection for the batch's many transactions
            self.queue()
            return asyncio.run(self._main())

    def check_new(self) -> None:
        """Raise a `TierflowError` naming the first request whose thread exists."""
        runs = RunsTable(self.db)
        for request in self.requests:
            if runs.get(request.thread) is not None:
                raise TierflowError(
                    f"line {request.line}: thread {request.thread!r} is in "
                    f"{describe(self.db)} already; a batch starts new threads (continue "
                    f"that one with `tierflow resume {request.thread}`)"
                )

    def queue(self) -> None:
        """Record every request's thread as `queued`, once all are known to be new."""
        self.check_new()
        for request in self.requests:
            self.runner(request.principal).queue(request.text, request.thread)

    async def _main(self) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            loop.add_signal_handler(signal.SIGINT, self._interrupted, loop)
        try:
            return await self.arun()
        finally:
            if on_main:
                loop.remove_signal_handler(signal.SIGINT)

    def _interrupted(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ctrl-C: stop the batch; the next Ctrl-C is Python's `KeyboardInterrupt`."""
        loop.remove_signal_handler(signal.SIGINT)
        self.stop(STOPPED)

    async def arun(self) -> list[Outcome]:
        """Run the queued threads on this event loop (`queue()` first)."""
        pending = deque(self.requests)
        workers = min(self.concurrency, len(self.requests))
        self._workers = [asyncio.create_task(self._work(pending)) for _ in range(workers)]
        ended = await asyncio.gather(*self._workers, return_exceptions=True)
        for request in self.requests:
            if request.thread not in self.outcomes:
                row = await asyncio.to_thread(RunsTable(self.db).get, request.thread)
                self._report(Outcome.left(request, row, self.reason, self.db))
        for result in ended:
            if isinstance(result, Exception):
                raise result
        return [self.outcomes[request.thread] for request in self.requests]

    def stop(self, reason: str = "stopped") -> None:
        """Start no more threads and cancel the running ones (each stays resumable;
        its row's error is `reason`)."""
        if not self.stopped:
            self.stopped, self.reason = True, reason
            for worker in self._workers:
                worker.cancel(reason)

    async def _work(self, pending: deque[Request]) -> None:
        while pending and not self.stopped:
            request = pending.popleft()
            try:
                self._report(await self._one(request))
            except Exception:  # not a run's failure but the batch's: stop, and say so
                self.stop("the batch stopped on an error")
                raise

    async def _one(self, request: Request) -> Outcome:
        self.tally.started(request.thread)
        runner = self.runner(request.principal)
        try:
            report = await runner.arun(request.text, request.thread)
        except TierflowError as error:  # a run's failure: the batch goes on
            status = "thread_busy" if isinstance(error, ThreadBusy) else "failed"
            return Outcome(request.line, request.thread, status, error=str(error))
        return Outcome.of(request, report)

    def _report(self, outcome: Outcome) -> None:
        self.outcomes[outcome.thread] = outcome
        self.tally.finished(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
