"""Approval rules: which allowed calls still need a human to say yes.

A rule names a scope (or a scope pattern) and, optionally, a condition on one argument:

    ApprovalRule(scope="refunds:write", argument="amount_usd", above=200)

is "refunds above $200 need approval". Rules are data (JSON in the agent's declaration);
`when=` takes a Python predicate for conditions data can't say (it shows in the JSON by
its name only). A call needs approval when any rule matching its scope says so.

Conditions fail safe: an argument that can't be compared needs approval rather than
slipping through. For `above` and `at_least` only a finite number compares: NaN and
infinities (whether the model sent a number or a string such as "NaN" that the tool's
schema turned into one), None, booleans and every string (even "250": a number must
arrive as a number) are held. A rule whose argument the call doesn't carry does not
apply (the schema already decided that argument is optional).

`sum_above` and `count_above` make a rule cumulative — it weighs this call together with
the calls that already ran and the rest of its turn (`tierflow.governance.cumulative`
reads what ran; `needs_approval` here decides the per-call rules only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from tierflow.foundation.spec import SpecModel
from tierflow.governance.permissions import covers, is_scope, is_scope_pattern

ApprovalPredicate = Callable[[Mapping[str, Any]], bool]
# Whose calls a cumulative rule adds up: this run's thread, every run of its principal,
# or every run of its principal's tenant.
Per = Literal["thread", "principal", "tenant"]

_COMPARISONS = ("above", "at_least", "equals", "one_of", "sum_above", "count_above")
_CUMULATIVE_FIELDS = ("sum_above", "count_above", "per", "window_s")


class ApprovalRule(SpecModel):
    """Which calls of `scope` a human must approve first. One comparison per rule:
    `above` / `at_least` / `equals` / `one_of` on this call's `argument`; or, cumulative,
    `sum_above` (this call's `argument` plus the same argument of every call of the
    scope that ran `per` thread, principal or tenant within the last `window_s` seconds
    (None: ever), plus the rest of this turn) or `count_above` (the number of such
    calls, this one included)."""

    scope: str
    argument: str | None = None
    above: float | None = Field(default=None, allow_inf_nan=False)
    at_least: float | None = Field(default=None, allow_inf_nan=False)
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    sum_above: float | None = Field(default=None, allow_inf_nan=False)
    count_above: int | None = Field(default=None, ge=0)
    per: Per = "thread"
    window_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
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
        comparisons = [name for name in _COMPARISONS if getattr(self, name) is not None]
        if len(comparisons) > 1:
            raise ValueError(f"give one comparison per rule, not {comparisons}")
        if self.count_above is not None and self.argument is not None:
            raise ValueError("count_above counts calls: it takes no argument (narrow with when=)")
        if comparisons and comparisons[0] != "count_above" and self.argument is None:
            raise ValueError(f"{comparisons[0]} needs the argument it compares")
        if self.argument is not None and not comparisons:
            raise ValueError(
                "an argument needs a comparison: above, at_least, equals, one_of, sum_above"
            )
        if not self.cumulative and ({"per", "window_s"} & self.model_fields_set):
            raise ValueError(
                "per and window_s belong to a cumulative rule (sum_above, count_above)"
            )
        return self

    @field_serializer("when")
    def _predicate_name(self, when: ApprovalPredicate | None) -> str | None:
        return None if when is None else getattr(when, "__qualname__", repr(when))

    @model_serializer(mode="wrap")
    def _per_call_rules_as_before(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A per-call rule's JSON has no cumulative fields: declarations written before
        they existed keep their JSON, and so their agent's fingerprint."""
        data = handler(self)
        if isinstance(data, dict) and not self.cumulative:
            for name in _CUMULATIVE_FIELDS:
                data.pop(name, None)
        return data

    @property
    def cumulative(self) -> bool:
        """Whether the rule weighs this call together with others (sum or count)."""
        return self.sum_above is not None or self.count_above is not None

    def applies_to(self, scope: str) -> bool:
        return is_scope(scope) and covers(self.scope, scope)

    def selects(self, arguments: Mapping[str, Any]) -> bool:
        """Whether a call of the rule's scope with these arguments is one it is about
        (its `when` predicate, if any, says yes)."""
        return self.when is None or bool(self.when(arguments))

    def requires(self, arguments: Mapping[str, Any]) -> str | None:
        """Why this per-call rule holds the call (it matched its scope already), or
        None. A cumulative rule needs what ran: `cumulative.cumulative_hold` decides it."""
        if self.cumulative or not self.selects(arguments):
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
    number = comparable(value)
    if number is None:
        return f"{name} is {value!r}, which can't be compared with {limit:g}"
    if number > limit or (not strict and number == limit):
        return f"{name} {number:g} is {'above' if strict else 'at least'} {limit:g}"
    return None


def comparable(value: Any) -> float | None:
    """`value` as a number a limit can be compared with, or None when it can't be: only
    a finite int or float is (not a bool, not NaN or an infinity, not an int too large
    for a float, not None, not a string — a number in a string is the tool's to parse,
    not the rule's)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


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
