"""Deterministic guardrails: checks that gate every terminal edge and risky tool call."""

from tierflow.guardrails.api import ApiSchemaGuard
from tierflow.guardrails.base import ON_FAIL_POLICIES, Guardrail, GuardrailBase, OnFail, Verdict
from tierflow.guardrails.facts import FactsGuard
from tierflow.guardrails.function import FunctionGuard, guardrail
from tierflow.guardrails.injection import InjectionGuard
from tierflow.guardrails.pii import PiiGuard
from tierflow.guardrails.schema import OutputSchema
from tierflow.guardrails.sql import SqlGuard

__all__ = [
    "ON_FAIL_POLICIES",
    "ApiSchemaGuard",
    "FactsGuard",
    "FunctionGuard",
    "Guardrail",
    "GuardrailBase",
    "InjectionGuard",
    "OnFail",
    "OutputSchema",
    "PiiGuard",
    "SqlGuard",
    "Verdict",
    "guardrail",
]
