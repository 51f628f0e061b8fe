"""The governor of an agent without a policy: every call allowed, nothing recorded.

`act` runs every tool call through a governor — authorise, review, execute — so an agent
without a policy takes the same path with `UNGOVERNED`, whose every step is a no-op: no
rule holds or refuses a call, no review is kept (a pause is asked again on every
resume), no slot is waited for, no audit row is written, and a call simply runs. It
touches no store, so nothing it does blocks an event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierflow.governance.audit import AuditDecision
from tierflow.governance.calls import GovernedCall, RunTool, RunToolAsync, ToolVerdict
from tierflow.governance.gate import OnWait
from tierflow.governance.governor import Governor
from tierflow.governance.reviews import review_outcome
from tierflow.governance.side_effects import RecordedResult

ALLOWED = ToolVerdict("allowed", "no policy", None)


class Ungoverned:
    """`Governor`'s tool-call methods, for an agent without a policy."""

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
        return run()

    async def aexecute_tool(
        self,
        call: GovernedCall,
        run: RunToolAsync,
        *,
        decision: AuditDecision = "allowed",
        on_wait: OnWait | None = None,
    ) -> RecordedResult | None:
        return await run()

    def __repr__(self) -> str:
        return "UNGOVERNED"


UNGOVERNED = Ungoverned()

# What `act` runs a turn's tool calls through: the run's governor, or `UNGOVERNED`.
ToolGovernor = Governor | Ungoverned
