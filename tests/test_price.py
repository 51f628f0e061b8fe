"""Price arithmetic and reading the provider's reported usage."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from tierflow import Price
from tierflow.models.price import TokenUsage, usage_from_metadata

FAST = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)

# 10,000 input tokens of which 4,000 were cached; 1,500 output of which 1,000 reasoning.
USAGE = TokenUsage(
    input_tokens=10_000, cached_tokens=4_000, output_tokens=1_500, reasoning_tokens=1_000
)


def test_cost_by_hand_fast_tier() -> None:
    # 6,000 * $2.00 + 4,000 * $0.50 + 1,500 * $8.00 per million
    assert FAST.cost(USAGE) == pytest.approx((12_000 + 2_000 + 12_000) / 1e6)
    assert FAST.cost(USAGE) == pytest.approx(0.026)


def test_cost_by_hand_reasoning_tier() -> None:
    # 6,000 * $1.75 + 4,000 * $0.175 + 1,500 * $14.00 per million
    assert REASONING.cost(USAGE) == pytest.approx(0.0105 + 0.0007 + 0.021)
    assert REASONING.cost(USAGE) == pytest.approx(0.0322)


def test_reasoning_tokens_are_not_billed_twice() -> None:
    without = TokenUsage(input_tokens=0, cached_tokens=0, output_tokens=1_500, reasoning_tokens=0)
    with_reasoning = TokenUsage(**{**without, "reasoning_tokens": 1_000})
    assert REASONING.cost(with_reasoning) == REASONING.cost(without) == pytest.approx(0.021)


def test_cached_tokens_are_billed_at_the_cached_rate() -> None:
    all_cached = TokenUsage(
        input_tokens=1_000_000, cached_tokens=1_000_000, output_tokens=0, reasoning_tokens=0
    )
    none_cached = TokenUsage(**{**all_cached, "cached_tokens": 0})
    assert FAST.cost(all_cached) == pytest.approx(0.50)
    assert FAST.cost(none_cached) == pytest.approx(2.00)
    # A cached count larger than the input count is capped at the input count.
    over = TokenUsage(**{**all_cached, "cached_tokens": 2_000_000})
    assert FAST.cost(over) == pytest.approx(0.50)


def test_zero_usage_costs_nothing() -> None:
    assert FAST.cost(usage_from_metadata(None)) == 0


def test_usage_from_langchain_usage_metadata() -> None:
    message = AIMessage(
        content="hi",
        usage_metadata={
            "input_tokens": 10_000,
            "output_tokens": 1_500,
            "total_tokens": 11_500,
            "input_token_details": {"audio": 0, "cache_read": 4_000, "cache_creation": 0},
            "output_token_details": {"audio": 0, "reasoning": 1_000},
        },
    )
    assert usage_from_metadata(message.usage_metadata) == USAGE


def test_usage_with_service_tier_prefixed_keys() -> None:
    # With service_tier="priority" langchain-openai prefixes the detail keys and adds a
    # `priority` count of the remaining (non-cached / non-reasoning) tokens.
    metadata = {
        "input_tokens": 10_000,
        "output_tokens": 1_500,
        "total_tokens": 11_500,
        "input_token_details": {"priority_cache_read": 4_000, "priority": 6_000},
        "output_token_details": {"priority_reasoning": 1_000, "priority": 500},
    }
    assert usage_from_metadata(metadata) == USAGE
    flex = {**metadata, "input_token_details": {"flex_cache_read": 4_000, "flex": 6_000}}
    assert usage_from_metadata(flex)["cached_tokens"] == 4_000


def test_usage_from_langchain_openai_service_tier() -> None:
    # The shape langchain-openai actually produces from an OpenAI usage block.
    from langchain_openai.chat_models.base import _create_usage_metadata

    openai_usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 1_500,
        "total_tokens": 11_500,
        "prompt_tokens_details": {"cached_tokens": 4_000},
        "completion_tokens_details": {"reasoning_tokens": 1_000},
    }
    for tier in (None, "default", "priority", "flex"):
        assert usage_from_metadata(_create_usage_metadata(openai_usage, tier)) == USAGE, tier


@pytest.mark.parametrize("metadata", [None, {}])
def test_no_usage_is_zero(metadata: dict[str, int] | None) -> None:
    assert usage_from_metadata(metadata) == TokenUsage(
        input_tokens=0, cached_tokens=0, output_tokens=0, reasoning_tokens=0
    )


def test_missing_details_and_none_counts_are_zero() -> None:
    metadata = {
        "input_tokens": 12,
        "output_tokens": 3,
        "input_token_details": {"cache_read": None},
    }
    assert usage_from_metadata(metadata) == TokenUsage(
        input_tokens=12, cached_tokens=0, output_tokens=3, reasoning_tokens=0
    )
