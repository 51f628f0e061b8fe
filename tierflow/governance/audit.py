"""The audit log: one row per governed decision on a tool call or a model call.

Every call that reaches the control point leaves a row — allowed, denied, held for a
human and then approved or rejected, or let through after waiting for a slot — with
its outcome, latency, tokens and cost. The table lives in the runs database (SQLite,
written with sqlite-utils), beside the thread's checkpoints; `audit(db, thread)` reads
it back for `tierflow audit [THREAD] [--json]`.

Arguments, outcomes and reasons are redacted before they are written. A row may carry
an `event` id (e.g. the call's idempotency key and its decision): a step that is
replayed after a crash then logs its calls once, not twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from tierflow.governance.records import RecordTable
from tierflow.governance.tables import GovernanceTables
from tierflow.store.database import rows_as_dicts

Kind = Literal["tool", "model", "review", "run"]
AuditDecision = Literal["allowed", "denied", "waited", "approved", "rejected"]
# ok: ran and succeeded · error: ran and failed · timeout: abandoned at its deadline ·
# not_run: refused before running (denied, rejected, over budget).
Outcome = Literal["ok", "error", "timeout", "not_run"]


class AuditRecord(TypedDict):
    """What the caller knows about one governed call."""

    thread: str
    step: int
    kind: Kind
    name: str  # the tool, or the model (`tier:model`)
    decision: AuditDecision
    outcome: Outcome
    principal: NotRequired[str | None]
    agent: NotRequired[str | None]
    call_id: NotRequired[str | None]
    arguments: NotRequired[Mapping[str, Any] | None]
    reason: NotRequired[str]
    latency_s: NotRequired[float | None]
    tokens: NotRequired[int | None]
    cost_usd: NotRequired[float | None]
    event: NotRequired[str | None]


class AuditEntry(TypedDict):
    """One row of the audit log, as read back (JSON-ready)."""

    id: int
    time: str
    thread: str
    step: int
    principal: str | None
    agent: str | None
    kind: str
    name: str
    call_id: str | None
    arguments: dict[str, Any] | None
    decision: str
    outcome: str
    reason: str
    latency_s: float | None
    tokens: int | None
    cost_usd: float | None


class AuditLog(RecordTable):
    """Writes audit rows to the runs database at `db`."""

    def row(self, record: AuditRecord) -> dict[str, Any]:
        """The redacted row `record` becomes."""
        arguments = record.get("arguments")
        return {
            "event": record.get("event"),
            "time": self.clock(),
            "thread": record["thread"],
            "step": record["step"],
            "principal": record.get("principal"),
            "agent": record.get("agent"),
            "kind": record["kind"],
            "name": record["name"],
            "call_id": record.get("call_id"),
            "arguments": None
            if arguments is None
            else json.dumps(self.redactor.redact_arguments(arguments), default=str),
            "decision": record["decision"],
            "outcome": record["outcome"],
            "reason": self.redactor.redact_text(record.get("reason", "")),
            "latency_s": record.get("latency_s"),
            "tokens": record.get("tokens"),
            "cost_usd": record.get("cost_usd"),
        }

    def write(self, record: AuditRecord) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[AuditRecord]) -> None:
        """Write rows in one transaction; a row whose `event` is logged already is skipped."""
        rows = [self.row(record) for record in records]
        if not rows:
            return
        columns = list(rows[0])
        with self.tables.transaction() as tx:
            tx.executemany(
                f"INSERT INTO audit ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING",
                [[row[column] for column in columns] for row in rows],
            )


def audit(db: str | Path, thread: str | None = None) -> list[AuditEntry]:
    """The audit log of the runs database at `db` (of one `thread`), oldest first."""
    tables = GovernanceTables(db)
    with tables.transaction(write=False, create=False) as conn:
        cursor = (
            conn.execute("SELECT * FROM audit ORDER BY id")
            if thread is None
            else conn.execute("SELECT * FROM audit WHERE thread = ? ORDER BY id", (thread,))
        )
        rows = rows_as_dicts(cursor)
    return [_entry(row) for row in rows]


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        time=row["time"],
        thread=row["thread"],
        step=row["step"],
        principal=row["principal"],
        agent=row["agent"],
        kind=row["kind"],
        name=row["name"],
        call_id=row["call_id"],
        arguments=None if row["arguments"] is None else json.loads(row["arguments"]),
        decision=row["decision"],
        outcome=row["outcome"],
        reason=row["reason"] or "",
        latency_s=row["latency_s"],
        tokens=row["tokens"],
        cost_usd=row["cost_usd"],
    )
