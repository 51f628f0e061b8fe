"""Deterministic guardrails: checks that gate every terminal edge and risky tool call.

The names load on first use (`tierflow.foundation.lazy`): sqlglot comes with `SqlGuard`, jsonschema
with a guard that validates JSON Schema."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.guardrails.api import ApiSchemaGuard
    from tierflow.guardrails.base import (
        ON_FAIL_POLICIES,
        Guardrail,
        GuardrailBase,
        OnFail,
        Verdict,
    )
    from tierflow.guardrails.facts.guard import FactsGuard
    from tierflow.guardrails.function import FunctionGuard, guardrail
    from tierflow.guardrails.injection import InjectionGuard
    from tierflow.guardrails.pii.guard import PiiGuard
    from tierflow.guardrails.schema import OutputSchema
    from tierflow.guardrails.sql.guard import SqlGuard

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

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.guardrails.api": ("ApiSchemaGuard",),
        "tierflow.guardrails.base": (
            "ON_FAIL_POLICIES",
            "Guardrail",
            "GuardrailBase",
            "OnFail",
            "Verdict",
        ),
        "tierflow.guardrails.facts.guard": ("FactsGuard",),
        "tierflow.guardrails.function": ("FunctionGuard", "guardrail"),
        "tierflow.guardrails.injection": ("InjectionGuard",),
        "tierflow.guardrails.pii.guard": ("PiiGuard",),
        "tierflow.guardrails.schema": ("OutputSchema",),
        "tierflow.guardrails.sql.guard": ("SqlGuard",),
    },
)
