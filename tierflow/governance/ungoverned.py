"""The governor of an agent without a policy: every call allowed, only side effects
recorded.

`act` runs every tool call through a governor — authorise, review, execute — so an agent
without a policy takes the same path with an `Ungoverned`, whose steps are no-ops: no
rule holds or refuses a call, no review is kept (a pause is asked again on every
resume), no slot is waited for, no audit row is written. One thing stays: a call of a
tool declared `side_effects=True` is recorded in the run store's `side_effects` table
(begin, run with its attempt, record), so a replayed step returns its outcome instead of
running it again — with or without a policy. Nothing else touches a store; that write
runs in a worker thread under `ainvoke`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from tierflow.governance.audit import AuditDecision
from tierflow.governance.calls import GovernedCall, RunTool, RunToolAsync, ToolVerdict
from tierflow.governance.gate import OnWait
from tierflow.governance.governor import Governor
from tierflow.governance.redact import Redactor
from tierflow.governance.reviews import review_outcome
from tierflow.governance.side_effects import Attempt, CallSite, RecordedResult, SideEffects

ALLOWED = ToolVerdict("allowed", "no policy", None)


@functools.cache
def _default_redactor() -> Redactor:
    """One default redactor for every ungoverned turn (building one costs ~1 ms)."""
    return Redactor()


class Ungoverned:
    """`Governor`'s tool-call methods, for an agent without a policy; side-effecting
    calls recorded in the run store at `db` (None: not recorded — `UNGOVERNED`)."""

    def __init__(self, db: str | Path | None = None, thread: str = "") -> None:
        self.db = db
        self.thread = thread

    @cached_property
    def side_effects(self) -> SideEffects | None:
        if self.db is None:
            return None
        return SideEffects(self.db, redactor=_default_redactor())

    def _site(self, call: GovernedCall) -> CallSite:
        return CallSite(thread=self.thread, step=call.step, call_id=call.call_id, tool=call.tool)

    def authorize_tool(
        self,
        call: GovernedCall,
        *,
        turn: Sequence[GovernedCall] = (),
        tool_scopes: Mapping[str, str | None] | None = None,
    ) -> ToolVerdict:
        return ALLOWED

    def reviewed(self, call: GovernedCall, decision: Mapping[str, Any]) -> AuditDecision:
        return review_outcome(decision)

    def recorded_review(self, held: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        return None

    def record_review(self, held: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> None:
        return None

    def execute_tool(
        self,
        call: GovernedCall,
        run: RunTool,
        *,
        decision: AuditDecision = "allowed",
        on_wait: OnWait | None = None,
    ) -> RecordedResult | None:
        records = self.side_effects
        if call.idempotency_key is None or records is None:
            return run(1)
        return records.once(
            call.idempotency_key, self._site(call), lambda attempt: run(attempt.attempt)
        )

    async def aexecute_tool(
        self,
        call: GovernedCall,
        run: RunToolAsync,
        *,
        decision: AuditDecision = "allowed",
        on_wait: OnWait | None = None,
    ) -> RecordedResult | None:
        records = self.side_effects
        if call.idempotency_key is None or records is None:
            return await run(1)

        async def keyed(attempt: Attempt) -> RecordedResult | None:
            return await run(attempt.attempt)

        return await records.aonce(call.idempotency_key, self._site(call), keyed)

    def __repr__(self) -> str:
        return "UNGOVERNED" if self.db is None else f"Ungoverned(db={str(self.db)!r})"


UNGOVERNED = Ungoverned()

# What `act` runs a turn's tool calls through: the run's governor, or `UNGOVERNED`.
ToolGovernor = Governor | Ungoverned
