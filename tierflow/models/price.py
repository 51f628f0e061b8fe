"""Prices per million tokens and the cost of one model call from reported usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field
from typing_extensions import TypedDict

from tierflow.spec_model import SpecModel

PER_MILLION = 1_000_000


class TokenUsage(TypedDict):
    """Token counts of one model call, as the provider reported them.

    `input_tokens` includes `cached_tokens`; `output_tokens` includes `reasoning_tokens`
    (this is how OpenAI and LangChain's `usage_metadata` count them).
    """

    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int


class Price(SpecModel):
    """USD per million tokens. Reasoning tokens are billed as output."""

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)

    def cost(self, usage: TokenUsage) -> float:
        """Cost in USD of one call with this usage."""
        cached = min(usage["cached_tokens"], usage["input_tokens"])
        uncached = usage["input_tokens"] - cached
        return (
            uncached * self.input
            + cached * self.cached_input
            + usage["output_tokens"] * self.output
        ) / PER_MILLION


def usage_from_metadata(metadata: Mapping[str, Any] | None) -> TokenUsage:
    """Read LangChain's `usage_metadata` into a `TokenUsage`.

    Cached input is `input_token_details.cache_read`; with an OpenAI service tier the
    keys carry a prefix (`priority_cache_read`, `flex_cache_read`), so any key ending in
    `cache_read` counts. Reasoning is `output_token_details.reasoning` (or prefixed).
    """
    if not metadata:
        return TokenUsage(input_tokens=0, cached_tokens=0, output_tokens=0, reasoning_tokens=0)
    input_details: Mapping[str, Any] = metadata.get("input_token_details") or {}
    output_details: Mapping[str, Any] = metadata.get("output_token_details") or {}
    cached = sum(int(v or 0) for k, v in input_details.items() if k.endswith("cache_read"))
    reasoning = sum(int(v or 0) for k, v in output_details.items() if k.endswith("reasoning"))
    return TokenUsage(
        input_tokens=int(metadata.get("input_tokens") or 0),
        cached_tokens=cached,
        output_tokens=int(metadata.get("output_tokens") or 0),
        reasoning_tokens=reasoning,
    )
