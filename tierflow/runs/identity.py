"""A thread stays what it started as: the agent it started with (its declaration's
fingerprint) and the principal it acts for, both recorded in the runs table before its
first step. A run or resume that would change either is refused — a changed agent only
with an override, which is audited."""

from __future__ import annotations

from typing import Any

from tierflow.errors import AgentChanged, TierflowError
from tierflow.governance.audit import AuditLog, AuditRecord
from tierflow.governance.policy import Principal
from tierflow.store import RunsTable
from tierflow.store.runs import RunRow


def check_agent(
    runs: RunsTable,
    thread: str,
    record: RunRow | None,
    *,
    agent: str,
    fingerprint: str,
    allow_changed: bool,
) -> None:
    """A thread runs the agent it started with: a changed declaration is refused (or,
    with `allow_changed`, audited and recorded)."""
    if record is None or not record["fingerprint"]:
        return
    if record["fingerprint"] == fingerprint:
        return
    if not allow_changed:
        raise AgentChanged(
            f"thread {thread!r} was started by agent {record['agent']!r} "
            f"(fingerprint {record['fingerprint'][:12]}); {agent!r} as loaded "
            f"now is {fingerprint[:12]}: its declaration changed. Resume with "
            "--allow-changed-agent to continue anyway (audited)"
        )
    AuditLog(runs.target).write(
        AuditRecord(
            event=f"agent_changed:{thread}:{record['fingerprint']}:{fingerprint}",
            thread=thread,
            step=-1,
            principal=(record["principal"] or {}).get("id"),
            agent=agent,
            kind="run",
            name="agent_changed",
            decision="allowed",
            outcome="ok",
            reason=f"fingerprint {record['fingerprint'][:12]} -> {fingerprint[:12]}",
        )
    )
    runs.update(thread, fingerprint=fingerprint)


def acting_for(thread: str, record: RunRow | None, given: Principal | None) -> Principal | None:
    """Who the run acts for: the one recorded with the thread, never another."""
    kept = None if record is None else record["principal"]
    if kept is None:
        return given
    recorded = Principal.model_validate(kept)
    if given is not None and given != recorded:
        raise TierflowError(
            f"thread {thread!r} acts for principal {recorded.id!r}; a run can't "
            f"change who it acts for (given {given.id!r})"
        )
    return recorded


def principal_json(principal: Principal | None) -> dict[str, Any] | None:
    """The principal as the runs table records it."""
    return None if principal is None else principal.model_dump(mode="json")
