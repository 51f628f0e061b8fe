"""Putting runs in the queue: a new thread per request (`submit`), or a thread to
continue — after a review, a crash, a failure (`resubmit`).

A submitted run is a runs row before it is a job: `queued` (`Runner.queue`), with
everything `tierflow run` records before a first step (the agent's source, as
`load_declared` gives it, its fingerprint, provider and principal) and the request
masked as the runs table keeps every request. The worker runs exactly that row: its
request as recorded, for its principal, on the agent its source loads (refused if the
declaration changed since).
The row is written before its job is, so a worker never meets a job without a row; a
submit killed in between leaves a `queued` row with no job — `resubmit` enqueues it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tierflow.errors import CheckpointError, TierflowError
from tierflow.runs.load import load_declared
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable, database
from tierflow.store.runs import LIVE_STATUSES
from tierflow.workers import queue

if TYPE_CHECKING:
    from tierflow.governance.policy import Principal
    from tierflow.graphs.workflow import Declared


def submit(
    declared: Declared,
    source: str,
    requests: Sequence[str],
    db: str,
    *,
    principal: Principal | None = None,
    tenant: str | None = None,
) -> list[str]:
    """Queue one run of `declared` (loaded from `source`) per request, each on a new
    thread, for `principal`, counted against `tenant`'s quota (by default the
    principal's tenant, else `default`). The threads, in the order of the requests."""
    url = queue.postgres_url(db)
    for number, request in enumerate(requests, start=1):
        if not request.strip():
            raise TierflowError(f"request {number} is empty")
    owner = tenant or (principal.tenant if principal is not None else None)
    runner = Runner(declared, db=url, source=source, principal=principal)
    threads = []
    with queue.client(url) as app:
        for request in requests:
            thread = uuid.uuid4().hex[:12]
            runner.queue(request, thread)
            queue.enqueue(app, thread, owner or queue.DEFAULT_TENANT)
            threads.append(thread)
    return threads


def resubmit(db: str, thread: str, decision: Mapping[str, Any] | None = None) -> str:
    """Queue `thread` again — with a reviewer's `decision` for a thread paused for
    review (`{"action": "approve"}` or `{"action": "reject", "reason": …}`, and a
    `reviewer`); any worker continues it from its last checkpoint. Its tenant: the
    one of its last job."""
    url = queue.postgres_url(db)
    runs = RunsTable(url)
    row = runs.get(thread)
    if row is None:
        raise CheckpointError(f"unknown thread {thread!r}")
    status = row["status"]
    if status == "queued" and _waiting(url, thread):
        raise TierflowError(f"thread {thread!r} is queued already")
    if status in LIVE_STATUSES:  # a live process runs it (a dead one's shows `crashed`)
        raise TierflowError(f"thread {thread!r} is {status} now: resubmit it once it stops")
    if decision is not None and status != "interrupted":
        raise TierflowError(f"thread {thread!r} is not waiting for a review (it is {status})")
    decision = _masked(row["source"], decision)
    tenant = queue.last_tenant(url, thread) or queue.DEFAULT_TENANT
    with queue.client(url) as app:
        runs.update(thread, status="queued", error=None)
        queue.enqueue(app, thread, tenant, decision)
    return tenant


def _waiting(url: str, thread: str) -> bool:
    """Whether a job waits in the queue for `thread`."""
    queue.set_up(url)
    with database.using(url) as db, db.transaction(write=False) as tx:
        row = tx.execute(
            "SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = ? AND status = 'todo'",
            [thread],
        ).fetchone()
    return row is not None


def _masked(source: str, decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The decision as the queue stores it: a rejection's reason masked by the agent's
    policy, like everything tierflow stores."""
    if decision is None:
        return None
    reason = decision.get("reason")
    if not isinstance(reason, str) or not source:
        return dict(decision)
    declared, _ = load_declared(source)
    if declared.policy is None:
        return dict(decision)
    return {**decision, "reason": declared.policy.redaction.redact_text(reason)}
