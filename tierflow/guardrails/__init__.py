"""Deterministic guardrails: checks that gate every terminal edge."""

from tierflow.guardrails.base import Guardrail, Verdict
from tierflow.guardrails.schema import OutputSchema

__all__ = ["Guardrail", "OutputSchema", "Verdict"]
