"""The declarative router: rules matched against the request, first match wins.

`RulesRouter` is data (it serialises with the agent), the default strategy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from tierflow.foundation.spec import SpecModel
from tierflow.routing.router import RouteDecision


class Rule(SpecModel):
    """Send a request to `tier` when any of its conditions holds.

    `keywords` match whole words, case-insensitively; `pattern` is a regular expression
    searched case-insensitively; `min_chars` matches requests at least that long.
    """

    tier: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    min_chars: int | None = Field(default=None, gt=0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from error
        return pattern

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if not self.keywords and self.pattern is None and self.min_chars is None:
            raise ValueError("a rule needs keywords, a pattern or min_chars")
        return self

    def explain(self, request: str) -> str | None:
        """Why this rule matches `request`, or None if it doesn't."""
        for keyword in self.keywords:
            if re.search(rf"\b{re.escape(keyword)}\b", request, re.IGNORECASE):
                return f"keyword {keyword!r}"
        if self.pattern is not None and re.search(self.pattern, request, re.IGNORECASE):
            return f"pattern {self.pattern!r}"
        if self.min_chars is not None and len(request) >= self.min_chars:
            return f"length {len(request)} >= {self.min_chars} chars"
        return None


class RulesRouter(SpecModel):
    """First matching rule wins; otherwise the `default` tier."""

    rules: tuple[Rule, ...] = ()
    default: str
    name: str = "rules"

    def tiers(self) -> set[str]:
        return {self.default, *(rule.tier for rule in self.rules)}

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        for index, rule in enumerate(self.rules):
            why = rule.explain(request)
            if why is not None:
                return RouteDecision(
                    tier=rule.tier,
                    router=self.name,
                    reason=f"rule {index + 1}: {why}",
                    confidence=1.0,
                )
        return RouteDecision(
            tier=self.default, router=self.name, reason="no rule matched: default", confidence=1.0
        )
