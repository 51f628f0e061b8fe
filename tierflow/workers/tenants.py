"""Per-tenant quotas: at most N jobs of one tenant run at once, across every worker.

A job takes a slot of its tenant before it runs and gives it back when it ends. The
slot is a row keyed by the job's id, taken under a transaction-level advisory lock per
tenant: two workers can't both take the last one. A slot whose job is no longer
running (it finished, or its dead worker's job was put back in the queue) is stale and
swept by the next job of that tenant, so a killed worker's slots come back by
themselves. A job that finds no free slot goes back to the queue for a moment
(`TenantBusy`): meanwhile the workers take other tenants' jobs, so one tenant's burst
waits behind its own quota instead of in front of everyone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from tierflow.store import database


class TenantBusy(Exception):
    """Every slot of the job's tenant is taken: run it a little later (not an error a
    user sees — the worker puts the job back in the queue)."""

    def __init__(self, tenant: str, quota: int) -> None:
        super().__init__(f"tenant {tenant!r} runs {quota} job(s) already (its quota)")
        self.tenant = tenant


def take(url: str, job: int, tenant: str, quota: int) -> bool:
    """Take a slot of `tenant` for `job` (True), or find them all taken (False)."""
    with database.using(url) as db:
        assert isinstance(db, database.PostgresDatabase)
        with db.pool.connection() as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('tierflow_tenant'), hashtext(%s))",
                (tenant,),
            )
            conn.execute(
                "DELETE FROM tierflow_tenant_slots s WHERE s.tenant = %s AND NOT EXISTS "
                "(SELECT 1 FROM procrastinate_jobs j WHERE j.id = s.job AND j.status = 'doing')",
                (tenant,),
            )
            row = conn.execute(
                "SELECT count(*) AS n, count(*) FILTER (WHERE job = %s) AS mine "
                "FROM tierflow_tenant_slots WHERE tenant = %s",
                (job, tenant),
            ).fetchone()
            assert row is not None
            if row["mine"]:
                return True  # this job's slot, taken before its worker died
            if row["n"] >= quota:
                return False
            conn.execute(
                "INSERT INTO tierflow_tenant_slots (job, tenant, taken_at) VALUES (%s, %s, %s)",
                (job, tenant, time.time()),
            )
    return True


def give_back(url: str, job: int) -> None:
    with database.using(url) as db:
        assert isinstance(db, database.PostgresDatabase)
        with db.pool.connection() as conn:
            conn.execute("DELETE FROM tierflow_tenant_slots WHERE job = %s", (job,))


@contextmanager
def slot(url: str, job: int, tenant: str, quota: int | None) -> Iterator[None]:
    """Hold a slot of `tenant` for the block (no quota: nothing to hold); `TenantBusy`
    if every one is taken."""
    if quota is None:
        yield
        return
    if not take(url, job, tenant, quota):
        raise TenantBusy(tenant, quota)
    try:
        yield
    finally:
        give_back(url, job)
