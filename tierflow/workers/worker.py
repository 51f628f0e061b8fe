"""A worker process: procrastinate's worker executing `tierflow.run_thread` jobs, N at a
time, each in a thread of its own (a `Runner` is synchronous).

Beside procrastinate's loop runs the reaper (`reaper.py`): every second it puts back in
the queue the jobs of workers whose heartbeat is older than `stalled_after` (a worker
SIGKILLed, or cut off) — procrastinate finds them, tierflow decides to run them again,
up to `max_worker_deaths` times a job, then fails it. Any worker then resumes such a
thread from its last checkpoint, once its lease is free: at once on the dead worker's
machine (the holder's process is gone), else when the lease expires. With the defaults
(heartbeat every 5 s, stalled after 15 s, leases of 20 s) a killed worker's runs
continue elsewhere within about 20 s. The reaper also deletes jobs finished over
`keep_jobs_hours` ago.

Every job prints one line when it starts and one when it ends, with a timestamp, the
thread and its tenant: `2026-12-01T19:13:08.123Z start THREAD tenant=T job=J`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import procrastinate

from tierflow.errors import CheckpointError, ThreadBusy, TierflowError
from tierflow.workers import jobs, queue, reaper
from tierflow.workers.tenants import TenantBusy

STALLED_AFTER_S = 15.0
MAX_WORKER_DEATHS = 3
KEEP_JOBS_HOURS = 72.0
POLL_S = 0.5  # how often an idle worker looks for jobs put back for later
BUSY_RETRY_S = 1  # a job whose thread or tenant is busy runs again this much later
STORE_RETRIES = 5  # a store error: tried again this many times, backing off

Say = Callable[[str], None]


@dataclass(frozen=True)
class WorkerOptions:
    """One worker's settings (`tierflow worker`)."""

    url: str
    concurrency: int = 4
    tenant_quota: int | None = None
    stalled_after: float = STALLED_AFTER_S
    lease_ttl: float = jobs.LEASE_TTL_S
    max_worker_deaths: int = MAX_WORKER_DEATHS  # then a job that kills its worker fails
    keep_jobs_hours: float = KEEP_JOBS_HOURS  # finished jobs are deleted after this


def stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def serve(options: WorkerOptions, say: Say) -> None:
    """Run a worker until SIGINT or SIGTERM; the jobs it runs finish first."""
    queue.set_up(options.url)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    asyncio.run(_serve(options, say))


async def _serve(options: WorkerOptions, say: Say) -> None:
    loop = asyncio.get_running_loop()
    # procrastinate runs a synchronous task in the loop's default executor.
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=options.concurrency + 1, thread_name_prefix="tierflow-job")
    )
    connector = procrastinate.PsycopgConnector(conninfo=options.url, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    register(app, options, say)
    async with app.open_async():
        reaping = asyncio.create_task(
            reaper.reap(app, options, lambda line: say(f"{stamp()} {line}"))
        )
        say(f"{stamp()} ready pid={os.getpid()} concurrency={options.concurrency}")
        try:
            await app.run_worker_async(
                queues=[queue.QUEUE],
                name=f"tierflow-{os.getpid()}",
                concurrency=options.concurrency,
                update_heartbeat_interval=options.stalled_after / 3,
                stalled_worker_timeout=options.stalled_after,
                fetch_job_polling_interval=POLL_S,
                install_signal_handlers=True,
            )
        finally:
            reaping.cancel()
    say(f"{stamp()} stopped pid={os.getpid()}")


def register(app: procrastinate.App, options: WorkerOptions, say: Say) -> None:
    """The one task, on `app`, with the retry policy above."""
    settings = jobs.Settings(options.url, options.tenant_quota, options.lease_ttl)

    class Retry(procrastinate.BaseRetryStrategy):
        def get_retry_decision(
            self, *, exception: BaseException, job: procrastinate.jobs.Job
        ) -> procrastinate.RetryDecision | None:
            if isinstance(exception, ThreadBusy | TenantBusy):
                return procrastinate.RetryDecision(retry_in={"seconds": BUSY_RETRY_S})
            if isinstance(exception, CheckpointError) and job.attempts < STORE_RETRIES:
                return procrastinate.RetryDecision(retry_in={"seconds": 2**job.attempts})
            return None

    def run_thread(context: Any, thread: str, tenant: str, decision: Any = None) -> str:
        return _job(settings, say, jobs.Job(context.job.id, thread, tenant, decision))

    app.task(name=queue.TASK, queue=queue.QUEUE, pass_context=True, retry=Retry())(run_thread)


def _job(settings: jobs.Settings, say: Say, job: jobs.Job) -> str:
    """One job, told in lines: `start` (a slot of its tenant taken), then `finish`
    with the run's status, `later` (its thread or tenant busy) or `error`."""
    where = f"tenant={job.tenant} job={job.id}"
    try:
        return jobs.execute(
            settings,
            job,
            on_start=lambda: say(f"{stamp()} start {job.thread} {where}"),
            on_end=lambda status: say(f"{stamp()} finish {job.thread} {status} {where}"),
        )
    except (ThreadBusy, TenantBusy) as busy:
        say(f"{stamp()} later {job.thread} {where}: {busy}")
        raise
    except TierflowError as error:
        say(f"{stamp()} error {job.thread} {where}: {error}")
        raise
