"""Governed execution: the control point every tool call and model call passes through.

Permissions (`Grant`, `check`), approval rules (`ApprovalRule`: per call, or cumulative
over what ran), flow rules (`FlowRule`: once untrusted content entered the thread),
budgets (`Budgets`: reserve → settle), concurrency and rate limits (`Capacity`), retries
(`Backoff`, `TransientError`), side-effect records (`SideEffects`), the audit log
(`AuditLog`, `audit`) and redaction (`Redactor`). `Governor` applies them for one run.
docs/governance.md has the design and its guarantees.

The names load on first use (`tierflow.foundation.lazy`), all but `audit`: `Policy` is part of an
agent's declaration, the rest of a governed run."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

# Eager: it shares its name with its module, which would shadow it once imported.
from tierflow.governance.audit import audit

if TYPE_CHECKING:
    from tierflow.governance.approval import ApprovalRule, needs_approval
    from tierflow.governance.audit import AuditEntry, AuditLog, AuditRecord
    from tierflow.governance.budget import Budgets, Reservation, Spend, principal_key, run_key
    from tierflow.governance.errors import BudgetExceeded, GovernanceError, PermissionDenied
    from tierflow.governance.flows import FlowRule
    from tierflow.governance.gate import Gate, WaitEvent
    from tierflow.governance.governor import GovernedCall, Governor, ToolVerdict
    from tierflow.governance.idempotency import idempotency_key
    from tierflow.governance.limits import CallLimits, Capacity, RateLimit
    from tierflow.governance.permissions import Decision, Grant, check
    from tierflow.governance.policy import Policy, Principal
    from tierflow.governance.redact import RedactingLogFilter, RedactingSerializer, Redactor
    from tierflow.governance.retry import Backoff, TransientError
    from tierflow.governance.side_effects import CallSite, RecordedResult, SideEffects

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "tierflow.governance.approval": ("ApprovalRule", "needs_approval"),
        "tierflow.governance.audit": ("AuditEntry", "AuditLog", "AuditRecord"),
        "tierflow.governance.budget": (
            "Budgets",
            "Reservation",
            "Spend",
            "principal_key",
            "run_key",
        ),
        "tierflow.governance.errors": ("BudgetExceeded", "GovernanceError", "PermissionDenied"),
        "tierflow.governance.flows": ("FlowRule",),
        "tierflow.governance.gate": ("Gate", "WaitEvent"),
        "tierflow.governance.governor": ("GovernedCall", "Governor", "ToolVerdict"),
        "tierflow.governance.idempotency": ("idempotency_key",),
        "tierflow.governance.limits": ("CallLimits", "Capacity", "RateLimit"),
        "tierflow.governance.permissions": ("Decision", "Grant", "check"),
        "tierflow.governance.policy": ("Policy", "Principal"),
        "tierflow.governance.redact": ("RedactingLogFilter", "RedactingSerializer", "Redactor"),
        "tierflow.governance.retry": ("Backoff", "TransientError"),
        "tierflow.governance.side_effects": ("CallSite", "RecordedResult", "SideEffects"),
    },
)

__all__ = [
    "ApprovalRule",
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "Backoff",
    "BudgetExceeded",
    "Budgets",
    "CallLimits",
    "CallSite",
    "Capacity",
    "Decision",
    "FlowRule",
    "Gate",
    "GovernanceError",
    "GovernedCall",
    "Governor",
    "Grant",
    "PermissionDenied",
    "Policy",
    "Principal",
    "RateLimit",
    "RecordedResult",
    "RedactingLogFilter",
    "RedactingSerializer",
    "Redactor",
    "Reservation",
    "SideEffects",
    "Spend",
    "ToolVerdict",
    "TransientError",
    "WaitEvent",
    "audit",
    "check",
    "idempotency_key",
    "needs_approval",
    "principal_key",
    "run_key",
]
