"""Deterministic guardrails: checks that gate every terminal edge and risky tool call."""

from tierflow.guardrails.api import ApiSchemaGuard
from tierflow.guardrails.base import ON_FAIL_POLICIES, Guardrail, GuardrailBase, OnFail, Verdict
from tierflow.guardrails.schema import OutputSchema
from tierflow.guardrails.sql import SqlGuard

__all__ = [
    "ON_FAIL_POLICIES",
    "ApiSchemaGuard",
    "Guardrail",
    "GuardrailBase",
    "OnFail",
    "OutputSchema",
    "SqlGuard",
    "Verdict",
]
