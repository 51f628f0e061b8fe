"""Finished jobs don't pile up: the reaper deletes the queue's jobs finished over
`--keep-jobs-hours` ago, with their events and death counts, but keeps each thread's
newest job (a resubmitted thread keeps the tenant of its last job). Ages are made by
moving the jobs' events back in time; `tests/test_workers_poison.py` shows a worker
pruning when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from checkpoint_stores import fresh_database

from tierflow.workers import queue, reaper

HOUR_S = 3600.0


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as found:
        yield found


def finished(url: str, thread: str, tenant: str, hours_ago: float = 0.0) -> int:
    """A job of `thread` that finished `hours_ago` (no event since): its id."""
    with queue.client(url) as app:
        job = queue.enqueue(app, thread, tenant)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (job,))
        conn.execute(
            "UPDATE procrastinate_events SET at = at - make_interval(secs => %s) WHERE job_id = %s",
            (hours_ago * HOUR_S, job),
        )
    return job


def jobs(url: str) -> list[tuple[int, str, str]]:
    """Every job: (id, thread, status)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, lock, status::text FROM procrastinate_jobs ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows.fetchall()]


def test_old_finished_jobs_go_but_each_threads_newest_stays(url: str) -> None:
    old = finished(url, "resumed", "acme", hours_ago=100)
    newest = finished(url, "resumed", "acme", hours_ago=90)  # old too, but the newest
    only = finished(url, "once", "beta", hours_ago=100)  # a thread's only job
    recent = finished(url, "recent", "gamma", hours_ago=1)
    latest = finished(url, "recent", "gamma")
    with queue.client(url) as app:
        waiting = queue.enqueue(app, "waiting", "delta")  # its only job, old, not finished
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE procrastinate_events SET at = at - interval '100 hours' WHERE job_id = %s",
            (waiting,),
        )
        conn.execute(
            "INSERT INTO tierflow_job_deaths (job, attempts, died_at) VALUES (%s, 0, 0), "
            "(%s, 0, 0)",
            (old, newest),
        )

    assert reaper.prune(url, 72 * HOUR_S) == 1
    kept = [job for job, _, _ in jobs(url)]
    assert kept == [newest, only, recent, latest, waiting]
    with psycopg.connect(url) as conn:
        events = conn.execute("SELECT DISTINCT job_id FROM procrastinate_events").fetchall()
        deaths = conn.execute("SELECT job FROM tierflow_job_deaths").fetchall()
    assert sorted(job for (job,) in events) == kept
    assert deaths == [(newest,)]
    assert reaper.prune(url, 72 * HOUR_S) == 0

    # An hour's threshold takes the recent thread's older job; every thread keeps its tenant.
    assert reaper.prune(url, HOUR_S / 2) == 1
    assert [job for job, _, _ in jobs(url)] == [newest, only, latest, waiting]
    threads = ("resumed", "once", "recent", "waiting")
    tenants = {thread: queue.last_tenant(url, thread) for thread in threads}
    assert tenants == {"resumed": "acme", "once": "beta", "recent": "gamma", "waiting": "delta"}


def test_one_worker_prunes_at_a_time(url: str) -> None:
    old = finished(url, "resumed", "acme", hours_ago=100)
    finished(url, "resumed", "acme")
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tierflow_prune'))")
        assert reaper.prune(url, HOUR_S) is None  # another is pruning: this one skips
    assert old in [job for job, _, _ in jobs(url)]
    assert reaper.prune(url, HOUR_S) == 1
