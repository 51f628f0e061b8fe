"""Governed execution: the control point every tool call and model call passes through.

Permissions (`Grant`, `check`), approval rules (`ApprovalRule`: per call, or cumulative
over what ran), flow rules (`FlowRule`: once untrusted content entered the thread),
budgets (`Budgets`: reserve → settle), concurrency and rate limits (`Capacity`), retries
(`Backoff`, `TransientError`), side-effect records (`SideEffects`), the audit log
(`AuditLog`, `audit`) and redaction (`Redactor`). `Governor` applies them for one run.
docs/governance.md has the design and its guarantees.
"""

from tierflow.governance.approval import ApprovalRule, needs_approval
from tierflow.governance.audit import AuditEntry, AuditLog, AuditRecord, audit
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
