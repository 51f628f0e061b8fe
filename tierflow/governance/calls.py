"""A tool call as governance sees it, and what governance answers: the terms `act` and
every tool governor (`Governor`, `Ungoverned`) share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tierflow.governance.side_effects import RecordedResult

# Whether a tool call may run: a guardrail's `Verdict` is another thing.
Access = Literal["allowed", "denied", "needs_approval"]
# Runs the tool (with its retries and its timeout), given the attempt it starts at (1, or
# more when an earlier attempt of a side-effecting call left no outcome): its outcome,
# or None for a timeout.
RunTool = Callable[[int], RecordedResult | None]
RunToolAsync = Callable[[int], Awaitable[RecordedResult | None]]


@dataclass(frozen=True)
class GovernedCall:
    """One tool call as governance sees it. `idempotency_key` is set for a tool that
    declares side effects: its outcome is then recorded and a replay returns it."""

    tool: str
    scope: str | None
    arguments: Mapping[str, Any]
    step: int
    call_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ToolVerdict:
    """Whether a tool call may run. `message` is what the model reads when it may not."""

    verdict: Access
    reason: str
    scope: str | None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"
