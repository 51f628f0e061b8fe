"""The queue: procrastinate's tables in the run store's Postgres database, and one task.

A job is one thread to run or resume: `{"thread", "tenant", "decision"}`. Its `lock` is
the thread (procrastinate never runs two jobs of one lock at once) and so is its
`queueing_lock` (a thread has at most one job waiting). The thread's lease in the run
store is what really keeps a second process out; the lock saves a worker from fetching a
job it could not run.

procrastinate's schema is applied once per database, under the same session lock as
tierflow's own tables (`tierflow.store.postgres`), beside the tenant slots
(`tenants.py`) and the workers' deaths per job (`reaper.py`). Its version is pinned by
the `tierflow[workers]` extra: a newer procrastinate brings migrations this module does
not apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from tierflow.errors import CheckpointError, TierflowError
from tierflow.store import database
from tierflow.store.targets import is_postgres, redact

if TYPE_CHECKING:
    import procrastinate

QUEUE = "tierflow"
TASK = "tierflow.run_thread"
DEFAULT_TENANT = "default"
STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")  # of a job
SCHEMA_LOCK = "SELECT pg_try_advisory_lock(hashtext('tierflow_schema')) AS got"
SCHEMA_UNLOCK = "SELECT pg_advisory_unlock(hashtext('tierflow_schema'))"
SLOTS_DDL = (
    "CREATE TABLE IF NOT EXISTS tierflow_tenant_slots (job BIGINT PRIMARY KEY, "
    "tenant TEXT NOT NULL, taken_at DOUBLE PRECISION NOT NULL)"
)
# A worker's death while it ran a job, once per (job, attempts): two reapers finding the
# same stalled job count one death (`reaper.py`). Deleted with the job.
DEATHS_DDL = (
    "CREATE TABLE IF NOT EXISTS tierflow_job_deaths (job BIGINT NOT NULL "
    "REFERENCES procrastinate_jobs (id) ON DELETE CASCADE, attempts INTEGER NOT NULL, "
    "died_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (job, attempts))"
)
_READY: set[str] = set()  # URLs whose queue tables this process has seen


def engine() -> Any:
    """procrastinate, or one line saying how to install it."""
    try:
        import procrastinate
    except ImportError as error:
        raise TierflowError(
            f"workers need tierflow[workers] ({error.name} is missing): "
            "pip install 'tierflow[workers]'"
        ) from None
    return procrastinate


def postgres_url(db: str) -> str:
    """`db`, which must be a `postgresql://` URL: the queue lives in Postgres."""
    if not is_postgres(db):
        raise TierflowError(f"--db {db}: the run queue lives in Postgres; give --db postgresql://…")
    return db


def set_up(url: str) -> None:
    """tierflow's tables, procrastinate's, the tenant slots and the job deaths in the
    database at `url` (once per process; safe for processes setting up one database at
    once)."""
    if url in _READY:
        return
    procrastinate = engine()
    with database.using(url):  # tierflow's own tables first
        pass
    schema = procrastinate.App(
        connector=procrastinate.SyncPsycopgConnector(conninfo=url)
    ).schema_manager.get_schema()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            _locked(conn)
            try:
                with conn.transaction():
                    found = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
                    if found is None or found[0] is None:
                        conn.execute(schema.encode())
                    conn.execute(SLOTS_DDL.encode())
                    conn.execute(DEATHS_DDL.encode())
            finally:
                conn.execute(SCHEMA_UNLOCK)
    except psycopg.Error as error:
        raise CheckpointError(f"{redact(url)}: cannot set up the run queue ({error})") from error
    _READY.add(url)


def _locked(conn: psycopg.Connection[Any], timeout_s: float = 60.0) -> None:
    """The schema lock for this session, tried without waiting in the server (see
    `tierflow.store.postgres._lock_schema`: a blocked session could deadlock with a
    concurrent `CREATE INDEX CONCURRENTLY`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(SCHEMA_LOCK).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() > deadline:
            raise CheckpointError("timed out waiting for another process to set up the tables")
        time.sleep(0.05)


@contextmanager
def client(url: str) -> Iterator[procrastinate.App]:
    """A synchronous procrastinate app on the process's own pool for `url`: enqueueing
    shares the run store's connections."""
    procrastinate = engine()
    set_up(url)
    with database.using(url) as db:
        assert isinstance(db, database.PostgresDatabase)
        app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
        app.open(db.pool)
        try:
            yield app
        finally:
            app.close()


def job_args(thread: str, tenant: str, decision: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"thread": thread, "tenant": tenant, "decision": dict(decision) if decision else None}


def enqueue(app: procrastinate.App, thread: str, tenant: str, decision: Any = None) -> int:
    """Defer the job that runs (or resumes) `thread`; its id. A thread with a job
    waiting already is refused in one line."""
    procrastinate = engine()
    deferrer = app.configure_task(TASK, queue=QUEUE, lock=thread, queueing_lock=thread)
    try:
        job_id: int = deferrer.defer(**job_args(thread, tenant, decision))
    except procrastinate.exceptions.AlreadyEnqueued:
        raise TierflowError(f"thread {thread!r} is queued already") from None
    return job_id


def last_tenant(url: str, thread: str) -> str | None:
    """The tenant of the thread's latest job (a resumed thread keeps its tenant)."""
    with database.using(url) as db, db.transaction(write=False) as tx:
        row = tx.execute(
            "SELECT args->>'tenant' FROM procrastinate_jobs WHERE lock = ? AND queue_name = ? "
            "ORDER BY id DESC LIMIT 1",
            [thread, QUEUE],
        ).fetchone()
    return None if row is None else str(row[0])


def depth(url: str) -> dict[str, Any]:
    """Jobs per tenant and status, each tenant's oldest wait (seconds since a waiting
    job was first queued), and the workers with a heartbeat in the last minute."""
    set_up(url)
    with database.using(url) as db, db.transaction(write=False) as tx:
        rows = tx.execute(
            "SELECT coalesce(j.args->>'tenant', ''), j.status::text, count(*), "
            "max(extract(epoch FROM now() - first.at)) FILTER (WHERE j.status = 'todo') "
            "FROM procrastinate_jobs j LEFT JOIN LATERAL (SELECT min(e.at) AS at "
            "FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'deferred') "
            "first ON true WHERE j.queue_name = ? GROUP BY 1, 2 ORDER BY 1, 2",
            [QUEUE],
        ).fetchall()
        live = tx.execute(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '1 minute'"
        ).fetchone()
    tenants: dict[str, dict[str, Any]] = {}
    for tenant, status, jobs, oldest in rows:
        entry = tenants.setdefault(
            tenant, {"tenant": tenant, **dict.fromkeys(STATUSES, 0), "oldest_wait_s": None}
        )
        entry[status] = int(jobs)
        if oldest is not None:
            entry["oldest_wait_s"] = round(float(oldest), 1)
    return {"tenants": list(tenants.values()), "workers": int(live[0]) if live else 0}
