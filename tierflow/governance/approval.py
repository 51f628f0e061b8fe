"""Approval rules: which allowed calls still need a human to say yes.

A rule names a scope (or a scope pattern) and, optionally, a condition on one argument:

    ApprovalRule(scope="refunds:write", argument="amount_usd", above=200)

is "refunds above $200 need approval". Rules are data (JSON in the agent's declaration);
`when=` takes a Python predicate for conditions data can't say (it shows in the JSON by
its name only). A call needs approval when any rule matching its scope says so.

Conditions fail safe: an argument that can't be compared (a string where a number was
expected) needs approval rather than slipping through; a rule whose argument the call
doesn't carry does not apply (the schema already decided that argument is optional).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from tierflow.governance.permissions import covers, is_scope, is_scope_pattern
from tierflow.spec_model import SpecModel

ApprovalPredicate = Callable[[Mapping[str, Any]], bool]
ReviewOutcome = Literal["approved", "rejected"]


class ApprovalRule(SpecModel):
    scope: str
    argument: str | None = None
    above: float | None = None
    at_least: float | None = None
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    when: ApprovalPredicate | None = Field(default=None)
    reason: str = ""

    @field_validator("scope")
    @classmethod
    def _scope(cls, scope: str) -> str:
        if not is_scope_pattern(scope):
            raise ValueError(f"{scope!r} is not a scope or scope pattern (resource:action)")
        return scope

    @model_validator(mode="after")
    def _one_condition(self) -> ApprovalRule:
        comparisons = [
            name
            for name in ("above", "at_least", "equals", "one_of")
            if getattr(self, name) is not None
        ]
        if len(comparisons) > 1:
            raise ValueError(f"give one comparison per rule, not {comparisons}")
        if comparisons and self.argument is None:
            raise ValueError(f"{comparisons[0]} needs the argument it compares")
        if self.argument is not None and not comparisons:
            raise ValueError("an argument needs a comparison: above, at_least, equals, one_of")
        return self

    @field_serializer("when")
    def _predicate_name(self, when: ApprovalPredicate | None) -> str | None:
        return None if when is None else getattr(when, "__qualname__", repr(when))

    def applies_to(self, scope: str) -> bool:
        return is_scope(scope) and covers(self.scope, scope)

    def requires(self, arguments: Mapping[str, Any]) -> str | None:
        """Why this rule holds the call (it matched its scope already), or None."""
        if self.when is not None and not self.when(arguments):
            return None
        if self.argument is None:
            return self.reason or f"every {self.scope} call needs approval"
        if self.argument not in arguments:
            return None
        value = arguments[self.argument]
        held = _compare(self, value)
        if held is None:
            return None
        return self.reason or held


def _compare(rule: ApprovalRule, value: Any) -> str | None:
    name = rule.argument
    if rule.equals is not None:
        return f"{name} is {value!r}" if value == rule.equals else None
    if rule.one_of is not None:
        return f"{name} is {value!r}" if value in rule.one_of else None
    strict = rule.above is not None
    limit = rule.above if rule.above is not None else rule.at_least
    if limit is None:  # the validator lets no rule get here without a comparison
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} is {value!r}, which can't be compared with {limit:g}"
    if value > limit or (not strict and value == limit):
        return f"{name} {value:g} is {'above' if strict else 'at least'} {limit:g}"
    return None


@dataclass(frozen=True)
class ApprovalNeeded:
    """A call that may run only once a human approves it."""

    scope: str
    reason: str


def needs_approval(
    rules: Sequence[ApprovalRule], scope: str | None, arguments: Mapping[str, Any]
) -> ApprovalNeeded | None:
    """The first rule that holds this call for a human, or None to run it."""
    if scope is None:
        return None
    for rule in rules:
        if not rule.applies_to(scope):
            continue
        reason = rule.requires(arguments)
        if reason is not None:
            return ApprovalNeeded(scope, f"{scope} needs approval: {reason}")
    return None


def review_outcome(decision: Mapping[str, Any]) -> ReviewOutcome:
    """The audit decision of a reviewer's resume payload (`{"action": "approve"}` …).

    Anything but an explicit approve is a rejection: a garbled payload must not run a
    call that was held for a human."""
    return "approved" if decision.get("action") == "approve" else "rejected"
