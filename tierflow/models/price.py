"""Prices per million tokens and the cost of one model call from reported usage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator
from typing_extensions import TypedDict

from tierflow.foundation.spec import SpecModel

PER_MILLION = 1_000_000
SERVICE_TIERS = ("priority", "flex")  # the service tiers with their own prices


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
    """USD per million tokens. Reasoning tokens are billed as output.

    `priority` and `flex` are the prices of OpenAI's service tiers of those names, when
    they differ: a call the provider reports as served on one is priced at it (a call
    on an undeclared service tier is priced at the base price).
    """

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)
    priority: Price | None = None
    flex: Price | None = None
    # Where the numbers come from: None when declared by hand, `"genai-prices 0.2.3"`
    # when read from the maintained table (`Price.of`). Declared prices leave it unset,
    # so an agent's JSON (and fingerprint) doesn't change when nothing about it did.
    source: str | None = None

    @model_validator(mode="after")
    def _flat(self) -> Price:
        for name in SERVICE_TIERS:
            nested = getattr(self, name)
            if nested is not None and (nested.priority or nested.flex):
                raise ValueError(f"the {name} price can't have service-tier prices of its own")
        return self

    @classmethod
    def of(cls, reference: str, *, at: datetime | None = None) -> Price:
        """The price of a known model (`"openai:gpt-4.1"`) from genai-prices' bundled
        table, in force at `at` (default: now); offline. Raises `ModelError` for a model
        the table doesn't price per token."""
        from tierflow.models.prices import table_price

        provider, _, model = reference.partition(":")
        if not provider or not model:
            raise ValueError(f"{reference!r}: expected 'provider:model', e.g. 'openai:gpt-4.1'")
        return table_price(provider, model, at=at)

    @property
    def origin(self) -> str:
        """`"declared"`, or the table the price was read from."""
        return self.source or "declared"

    def for_service_tier(self, service_tier: str | None) -> Price:
        """The price that applies to a call served on `service_tier`."""
        declared = {"priority": self.priority, "flex": self.flex}.get(service_tier or "")
        return declared or self

    def cost(self, usage: TokenUsage) -> float:
        """Cost in USD of one call with this usage."""
        cached = min(usage["cached_tokens"], usage["input_tokens"])
        uncached = usage["input_tokens"] - cached
        return (
            uncached * self.input
            + cached * self.cached_input
            + usage["output_tokens"] * self.output
        ) / PER_MILLION


def expected_cost(
    price: Price,
    input_tokens: float,
    cached_share: float = 0.0,
    output_tokens: float = 0.0,
    reasoning_tokens: float = 0.0,
) -> float:
    """Expected cost in USD of a call not made yet, from expected token counts.

    `cached_share` of the input is read from the provider's prompt cache (billed at
    `cached_input`). Unlike `TokenUsage`, `output_tokens` here is the visible answer
    only: `reasoning_tokens` come on top of it, billed as output.
    """
    if not 0.0 <= cached_share <= 1.0:
        raise ValueError(f"cached_share must be between 0 and 1, got {cached_share}")
    cached = input_tokens * cached_share
    return (
        (input_tokens - cached) * price.input
        + cached * price.cached_input
        + (output_tokens + reasoning_tokens) * price.output
    ) / PER_MILLION


def service_tier_of(metadata: Mapping[str, Any] | None) -> str | None:
    """ "priority" or "flex" when the usage says the call was served on that service tier
    (langchain-openai then prefixes the detail keys: `priority_cache_read`, …)."""
    if not metadata:
        return None
    details = [
        metadata.get("input_token_details") or {},
        metadata.get("output_token_details") or {},
    ]
    for tier in SERVICE_TIERS:
        if any(key == tier or key.startswith(f"{tier}_") for d in details for key in d):
            return tier
    return None


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
