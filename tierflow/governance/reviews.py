"""Reviewers' decisions on held tool calls, as durable records.

A decision is written — who, when, what, why — before the approved call runs, and a
thread asks a reviewer once per held call: after a crash, the resume finds the record
and goes on without asking again. Records are keyed by (thread, call id), so a fork
(another thread) never inherits its parent's approvals: its held call is reviewed again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tierflow.governance.redact import Redactor
from tierflow.governance.tables import GovernanceTables, utc_now


class Reviews:
    """The `approvals` table of the run store at `db`."""

    def __init__(
        self,
        db: str | Path,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.store = GovernanceTables(db)
        self.redactor = redactor or Redactor()
        self.clock = clock

    def recorded(self, thread: str, call_ids: Sequence[str]) -> dict[str, Any] | None:
        """The decision recorded for every one of `call_ids` (one pause decides them
        all), or None if any is undecided."""
        if not call_ids:
            return None
        marks = ", ".join("?" for _ in call_ids)
        with self.store.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT call_id, decision, reviewer, reason FROM approvals "
                f"WHERE thread = ? AND call_id IN ({marks})",
                [thread, *call_ids],
            ).fetchall()
        if len(rows) < len(set(call_ids)):
            return None
        # One pause decides all its calls; should two pauses have decided them apart,
        # the strictest decision wins (a rejection), whatever order the rows come in.
        _, action, reviewer, reason = min(rows, key=lambda row: (row[1] == "approve", row[0]))
        decision: dict[str, Any] = {"action": action, "reviewer": reviewer}
        if reason:
            decision["reason"] = reason
        return decision

    def record(
        self, thread: str, calls: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]
    ) -> None:
        """Write the decision on each held call (`tool`, `call_id`, `arguments`); a
        call decided already keeps its first decision."""
        action = str(decision.get("action", "reject"))
        reviewer = decision.get("reviewer")
        reason = decision.get("reason")
        now = self.clock()
        rows = [
            [
                thread,
                str(call["call_id"]),
                str(call["tool"]),
                action,
                None if reviewer is None else str(reviewer),
                None if reason is None else self.redactor.redact_text(str(reason)),
                json.dumps(self.redactor.redact_arguments(call.get("arguments", {})), default=str),
                now,
            ]
            for call in calls
        ]
        with self.store.transaction() as tx:
            tx.executemany(
                "INSERT INTO approvals (thread, call_id, tool, decision, reviewer, reason, "
                "arguments, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (thread, call_id) DO NOTHING",
                rows,
            )
