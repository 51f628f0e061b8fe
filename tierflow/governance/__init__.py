"""Governed execution: the control point every tool call and model call passes through.

What a `Policy` declares: permissions (`Grant`), approval rules (`ApprovalRule`: per
call, or cumulative over what ran), flow rules (`FlowRule`: once untrusted content
entered the thread), redaction (`Redactor`), concurrency and rate limits (`CallLimits`,
`RateLimit`) and the tool retry policy (`RetryPolicy`). What runs it: who a run acts for
(`Principal`), budgets and their keys (`Budgets`, `run_key`, `principal_key`,
`tenant_key`), a process's gates (`Capacity`, which reports `WaitEvent`s), the audit log
(`audit`) and the redacting serializer and log filter. The errors are in
`tierflow.errors`; the governor and its parts, which the nodes and the runner use, are
imported from their modules. docs/governance.md has the design and its guarantees.

The names load on first use (`tierflow.foundation.lazy`), all but `audit`: `Policy` is
part of an agent's declaration, the rest of a governed run."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

# Eager: it shares its name with its module, which would shadow it once imported.
from tierflow.governance.audit import audit

if TYPE_CHECKING:
    from tierflow.foundation.retry import RetryPolicy
    from tierflow.governance.approval import ApprovalRule
    from tierflow.governance.audit import AuditEntry
    from tierflow.governance.budget import Budgets, principal_key, run_key, tenant_key
    from tierflow.governance.flows import FlowRule
    from tierflow.governance.gate import WaitEvent
    from tierflow.governance.limits import CallLimits, Capacity, RateLimit
    from tierflow.governance.permissions import Grant
    from tierflow.governance.policy import Policy, Principal
    from tierflow.governance.redact import RedactingLogFilter, RedactingSerializer, Redactor

__all__ = [
    "ApprovalRule",
    "AuditEntry",
    "Budgets",
    "CallLimits",
    "Capacity",
    "FlowRule",
    "Grant",
    "Policy",
    "Principal",
    "RateLimit",
    "RedactingLogFilter",
    "RedactingSerializer",
    "Redactor",
    "RetryPolicy",
    "WaitEvent",
    "audit",
    "principal_key",
    "run_key",
    "tenant_key",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.foundation.retry": ("RetryPolicy",),
        "tierflow.governance.approval": ("ApprovalRule",),
        "tierflow.governance.audit": ("AuditEntry",),
        "tierflow.governance.budget": ("Budgets", "principal_key", "run_key", "tenant_key"),
        "tierflow.governance.flows": ("FlowRule",),
        "tierflow.governance.gate": ("WaitEvent",),
        "tierflow.governance.limits": ("CallLimits", "Capacity", "RateLimit"),
        "tierflow.governance.permissions": ("Grant",),
        "tierflow.governance.policy": ("Policy", "Principal"),
        "tierflow.governance.redact": ("RedactingLogFilter", "RedactingSerializer", "Redactor"),
    },
)
