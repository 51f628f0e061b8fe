"""One job: run or resume one thread with a `Runner`, under the thread's lease and a slot
of its tenant's quota.

What the job does depends on where the thread stands, not on which attempt this is —
a job is retried after its worker died, and must then continue, not start over:

- queued and never checkpointed: `Runner.run` on the request recorded at submit;
- paused for review: with the reviewer's decision (carried by the job, or recorded
  before a worker died) `Runner.resume` continues it; without one there is nothing to
  do — the runs row says `interrupted` and the job ends;
- anything else (killed mid-run, a decision applied already): `Runner.resume` from the
  last checkpoint; tierflow's side-effect records make the replayed step's effects
  happen once.

How a job ends: the run's status (a failed run is an outcome, not a job failure);
`ThreadBusy` and `TenantBusy` put it back in the queue; a store error is retried a few
times; any other `TierflowError` fails the job (its runs row, if the run never started,
says why).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierflow import store as run_store
from tierflow.errors import CheckpointError, LoadError, RunFailed, TierflowError
from tierflow.runs.load import load_declared
from tierflow.runs.review import recorded_review
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable, database, leases
from tierflow.workers import tenants

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

    from tierflow.graphs.workflow import Declared
    from tierflow.store.runs import RunRow

# A worker's leases expire sooner than tierflow's default (30 s): on another machine a
# killed worker's thread is free this long after its last renewal at most.
LEASE_TTL_S = 20.0

_RUNNERS: dict[tuple[str, Settings], Runner] = {}
_LOADING = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """What every job of one worker shares: the database, the quota of concurrently
    running jobs per tenant (None: none), the lease's time to live."""

    url: str
    tenant_quota: int | None = None
    lease_ttl: float = LEASE_TTL_S


def runner_of(source: str, settings: Settings, fingerprint: str = "") -> Runner:
    """The `Runner` of the agent (or workflow) a runs row's source loads: one per
    source and process, so its jobs share one capacity (`GlobalCapacity` on Postgres)
    and the file is imported once — again when a row records another `fingerprint`
    (the file changed since: a run submitted after a deploy meets the new code)."""
    with _LOADING:
        key = (source, settings)
        found = _RUNNERS.get(key)
        if found is None or (fingerprint and found.fingerprint != fingerprint):
            agent, canonical = load_declared(source)
            found = Runner(agent, db=settings.url, source=canonical, lease_ttl=settings.lease_ttl)
            _RUNNERS[key] = found
        return found


@dataclass(frozen=True)
class Job:
    """A job of the queue: its id, the thread it runs, the tenant whose quota it
    counts against, and a reviewer's decision for a thread paused for review."""

    id: int
    thread: str
    tenant: str
    decision: Mapping[str, Any] | None = None


def execute(
    settings: Settings,
    job: Job,
    on_start: Callable[[], None] = lambda: None,
    on_end: Callable[[str], None] = lambda status: None,
) -> str:
    """Run `job`; the run's status when it stops. `on_start` and `on_end` (with the
    status) are called while the job holds a slot of its tenant."""
    with tenants.slot(settings.url, job.id, job.tenant, settings.tenant_quota):
        on_start()
        runs = RunsTable(settings.url)
        row = runs.get(job.thread)
        if row is None:
            raise TierflowError(f"unknown thread {job.thread!r}: it has no runs row")
        try:
            status = _drive(settings, runs, row, job.decision)
        except RunFailed:
            status = "failed"
        except CheckpointError:  # the store busy or away, the lease held: try again
            raise
        except TierflowError as error:
            if row["status"] == "queued":  # it never started: say why on its row
                runs.update(job.thread, status="failed", error=f"worker: {error}")
            raise
        on_end(status)
        return status


def _drive(
    settings: Settings, runs: RunsTable, row: RunRow, decision: Mapping[str, Any] | None
) -> str:
    thread = row["thread"]
    if not row["source"]:
        raise LoadError(f"thread {thread!r} records no source to load its agent from")
    runner = runner_of(row["source"], settings, row["fingerprint"])
    agent = runner.agent
    snapshot = _state(agent, settings.url, thread)
    if snapshot.created_at is None and row["status"] == "queued":
        return runner.run(row["request"], thread).status
    if not snapshot.interrupts:
        decision = None  # applied before a worker died: the thread is past its pause
    elif decision is None and not _decided(settings, runs, agent, thread):
        return "interrupted"
    return runner.resume(thread, decision).status


def _state(agent: Declared, url: str, thread: str) -> StateSnapshot:
    with run_store.open(url) as saver:
        graph = agent.compile(checkpointer=saver)
        return graph.get_state({"configurable": {"thread_id": thread}})


def _decided(settings: Settings, runs: RunsTable, agent: Declared, thread: str) -> bool:
    """Whether a paused thread has a reviewer's decision recorded (its worker died
    after the decision, before the calls ran); if not, it waits: the runs row says
    `interrupted` (checked and marked under the thread's lease)."""
    with database.using(settings.url) as db, leases.held(db, thread, ttl=settings.lease_ttl):
        snapshot = _state(agent, settings.url, thread)
        if not snapshot.interrupts:
            return True  # resumed meanwhile by another process: continue from there
        if recorded_review(settings.url, thread, snapshot) is not None:
            return True
        runs.update(thread, status="interrupted")
        return False
