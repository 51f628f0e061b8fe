"""Runs beyond one machine: a queue of runs in the run store's Postgres database, and
worker processes on any machine that execute them (`tierflow submit`, `tierflow
worker`). The queue is procrastinate's (`tierflow[workers]`); a job runs or resumes one
thread with the `Runner`, holding the thread's lease (`queue`, `jobs`, `worker`);
per-tenant quotas keep one tenant's burst from starving the others (`tenants`).

The names load on first use (`tierflow.foundation.lazy`): importing this package needs
neither procrastinate nor LangGraph."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.workers.queue import depth
    from tierflow.workers.submission import resubmit, submit
    from tierflow.workers.worker import WorkerOptions, serve

__all__ = ["WorkerOptions", "depth", "resubmit", "serve", "submit"]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.workers.queue": ("depth",),
        "tierflow.workers.submission": ("resubmit", "submit"),
        "tierflow.workers.worker": ("WorkerOptions", "serve"),
    },
)
