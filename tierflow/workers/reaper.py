"""The reaper, beside each worker's procrastinate loop: what happens to the jobs of a
worker that died, and to jobs long finished.

A dead worker's job (its heartbeat older than `stalled_after`) goes back to the queue,
and any worker resumes its thread from the last checkpoint — unless the job's workers
died `max_deaths` times running it: a run that crashes its process (a segfault, the
OOM killer, `os._exit` in a tool) would take down every worker that picks it up, for
ever. Such a job ends `failed`, and so does its thread's runs row, saying why; the
thread keeps its checkpoints (`tierflow submit --resume THREAD` queues it again, with a
new job and a new count). A death is a row keyed by (job, attempts): procrastinate adds
one attempt each time the job goes back, so one stint of the job dies once, however
many reapers find it; the job's row is locked while it is decided, and only while its
worker is still silent.

A death counts against every job its worker held: with `--concurrency` above 1 a run
sharing a process with one that kills it counts the death too.

Retention: finished jobs (succeeded, failed, cancelled, aborted) with no event for
`keep_s` are deleted, with their events — except the newest job of each thread, whose
tenant a resubmitted thread keeps (`queue.last_tenant`). One worker at a time deletes
(a transaction-level advisory lock; the others skip that pass), in batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import procrastinate
import psycopg

from tierflow.errors import CheckpointError
from tierflow.store import RunsTable, database
from tierflow.workers import queue

if TYPE_CHECKING:
    from tierflow.workers.worker import WorkerOptions

REAP_EVERY_S = 1.0
PRUNE_EVERY_S = 600.0  # and once when the worker starts
PRUNE_BATCH = 5000  # jobs deleted per transaction
# A runs row still saying its run goes on: the reaper that gives up marks it failed.
UNENDED = frozenset({"queued", "running", "waiting", "crashed"})

_STALLED_JOB = (
    "SELECT args->>'thread' AS thread FROM procrastinate_jobs WHERE id = %s "
    "AND status = 'doing' AND attempts = %s AND (worker_id IS NULL OR worker_id IN "
    "(SELECT id FROM procrastinate_workers "
    "WHERE last_heartbeat < now() - make_interval(secs => %s))) FOR UPDATE"
)
_PRUNE = (
    "DELETE FROM procrastinate_jobs WHERE id IN (SELECT j.id FROM procrastinate_jobs j "
    "WHERE j.queue_name = %(queue)s "
    "AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted') "
    "AND EXISTS (SELECT 1 FROM procrastinate_jobs newer WHERE newer.lock = j.lock "
    "AND newer.queue_name = j.queue_name AND newer.id > j.id) "
    "AND NOT EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id "
    "AND e.at > now() - make_interval(secs => %(keep)s)) LIMIT %(batch)s)"
)
_PRUNE_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('tierflow_prune')) AS got"


@dataclass(frozen=True)
class Settled:
    """What became of a dead worker's job: `requeued` or `failed`, after `deaths`."""

    job: int
    thread: str
    outcome: str
    deaths: int


def settle(
    url: str, job: int, attempts: int, stalled_after: float, max_deaths: int
) -> Settled | None:
    """Count the death of `job`'s worker during its attempt `attempts`, then put the job
    back in the queue, or fail it and its runs row once its workers died `max_deaths`
    times. None: not this stint's to decide (another reaper did, or its worker beats
    again)."""
    with database.using(url) as db:
        assert isinstance(db, database.PostgresDatabase)
        with db.pool.connection() as conn, conn.transaction():
            row = conn.execute(_STALLED_JOB, (job, attempts, stalled_after)).fetchone()
            if row is None:
                return None
            thread = str(row["thread"])
            conn.execute(
                "INSERT INTO tierflow_job_deaths (job, attempts, died_at) "
                "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (job, attempts, time.time()),
            )
            counted = conn.execute(
                "SELECT count(*) AS n FROM tierflow_job_deaths WHERE job = %s", (job,)
            ).fetchone()
            deaths = int(counted["n"]) if counted is not None else 0
            if deaths < max_deaths:
                conn.execute(
                    "SELECT procrastinate_retry_job_v2(%s, now(), NULL::integer, "
                    "NULL::varchar, NULL::varchar)",
                    (job,),
                )
                return Settled(job, thread, "requeued", deaths)
            conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", (job,))
            _fail_run(url, thread, deaths)  # if this fails, the next pass decides again
            return Settled(job, thread, "failed", deaths)


def _fail_run(url: str, thread: str, deaths: int) -> None:
    runs = RunsTable(url)
    found = runs.get(thread)
    if found is None or found["status"] not in UNENDED:
        return  # it ended before its worker died: the row already says how
    runs.update(
        thread,
        status="failed",
        error=(
            f"worker: its worker died {deaths} times running this thread (the run may "
            f"crash its process); `tierflow submit --resume {thread}` queues it again"
        ),
    )


def prune(url: str, keep_s: float) -> int | None:
    """Delete the queue's jobs finished `keep_s` ago or more (no event since), but the
    newest of each thread; how many, or None if another worker prunes now."""
    deleted = 0
    with database.using(url) as db:
        assert isinstance(db, database.PostgresDatabase)
        while True:
            with db.pool.connection() as conn, conn.transaction():
                got = conn.execute(_PRUNE_LOCK).fetchone()
                if got is None or not got["got"]:
                    return None
                batch = conn.execute(
                    _PRUNE, {"queue": queue.QUEUE, "keep": keep_s, "batch": PRUNE_BATCH}
                ).rowcount
            deleted += batch
            if batch < PRUNE_BATCH:
                return deleted


async def reap(app: procrastinate.App, options: WorkerOptions, say: Callable[[str], None]) -> None:
    """Every second: settle the jobs of workers that stopped beating; every
    `PRUNE_EVERY_S`, prune. `say` tells each outcome in a line."""
    manager = app.job_manager
    pruned_at: float | None = None
    while True:
        await asyncio.sleep(REAP_EVERY_S)
        try:
            stalled = await manager.get_stalled_jobs(
                queue=queue.QUEUE, seconds_since_heartbeat=options.stalled_after
            )
            for job in stalled:
                assert job.id is not None
                settled = await asyncio.to_thread(
                    settle,
                    options.url,
                    job.id,
                    job.attempts,
                    options.stalled_after,
                    options.max_worker_deaths,
                )
                if settled is not None:
                    say(_told(settled, options.max_worker_deaths))
            if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                pruned_at = time.monotonic()
                deleted = await asyncio.to_thread(
                    prune, options.url, options.keep_jobs_hours * 3600
                )
                if deleted:
                    say(f"pruned {deleted} job(s) finished over {options.keep_jobs_hours:g} h ago")
        except (
            procrastinate.exceptions.ConnectorException,
            psycopg.Error,
            CheckpointError,
        ) as error:
            say(f"reaper: {error}")


def _told(settled: Settled, max_deaths: int) -> str:
    where = f"{settled.thread} job={settled.job}"
    if settled.outcome == "requeued":
        return f"requeued {where} (worker gone, death {settled.deaths} of {max_deaths})"
    return f"failed {where} (its worker died {settled.deaths} times)"
