"""The governance layer's errors, in tierflow's one hierarchy.

DESIGN.md lists `BudgetExceeded` and `PermissionDenied` under `TierflowError`; they live
here, beside the code that raises them, and `tierflow.governance` exports them.
"""

from __future__ import annotations

from tierflow.errors import TierflowError


class GovernanceError(TierflowError):
    """A governance store can't be used as asked (unreadable table, unknown key …)."""


class PermissionDenied(TierflowError):
    """A call needs a scope its grants don't hold. Never retried."""

    def __init__(self, scope: str | None, reason: str) -> None:
        self.scope = scope
        self.reason = reason
        super().__init__(reason)


class BudgetExceeded(TierflowError):
    """A reservation would take a budget past its limit. Never retried; a run that meets
    it ends `budget_exceeded` and can resume once the budget is raised."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(reason)
