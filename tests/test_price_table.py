"""Prices of known models from genai-prices' bundled table: the table's numbers, a
declared price winning, the source recorded, offline, and loaded only when used."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot

from tierflow import Agent, Price, Tier
from tierflow.errors import SpecError
from tierflow.models.openai import OpenAIModel
from tierflow.models.price import TokenUsage
from tierflow.models.prices import table_source

AT = datetime(2026, 11, 1, tzinfo=UTC)  # prices change over time: pin the date
USAGE = TokenUsage(
    input_tokens=10_000, cached_tokens=4_000, output_tokens=1_500, reasoning_tokens=1_000
)
DECLARED = Price(input=1.0, cached_input=0.1, output=2.0)


def table_cost(model: str, service_tier: str | None = None) -> float:
    """What genai-prices itself charges for `USAGE` on OpenAI's `model`."""
    calculation = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=USAGE["input_tokens"],
            cache_read_tokens=USAGE["cached_tokens"],
            output_tokens=USAGE["output_tokens"],
        ),
        model,
        provider_id="openai",
        genai_request_timestamp=AT,
        price_context=None if service_tier is None else {"service_tier": service_tier},
    )
    return float(calculation.total_price)


@pytest.mark.parametrize("model", ["gpt-4.1", "gpt-5-mini", "o3"])
def test_a_known_model_costs_what_the_table_says(model: str) -> None:
    price = Price.of(f"openai:{model}", at=AT)
    assert price.cost(USAGE) == pytest.approx(table_cost(model))
    assert price.cached_input < price.input  # the cache discount came through
    for service_tier in ("priority", "flex"):
        served = price.for_service_tier(service_tier)
        assert served.cost(USAGE) == pytest.approx(table_cost(model, service_tier))


def test_gpt_4_1_numbers_and_source() -> None:
    price = Price.of("openai:gpt-4.1", at=AT)
    assert (price.input, price.cached_input, price.output) == (2.0, 0.5, 8.0)
    assert price.source == price.origin == f"genai-prices {genai_prices.__version__}"
    assert table_source() == price.source
    assert DECLARED.origin == "declared" and DECLARED.source is None


def test_a_tier_without_a_price_is_priced_from_the_table_and_says_so() -> None:
    tier = Tier(name="fast", model="openai:gpt-4.1")
    assert tier.price.model_dump(exclude={"source"}) == Price.of("openai:gpt-4.1").model_dump(
        exclude={"source"}
    )
    assert tier.spec()["price"]["source"] == table_source()
    on_openai = Tier(name="fast", model=OpenAIModel(model="gpt-4.1"))
    assert on_openai.price == tier.price


def test_a_declared_price_wins_and_keeps_the_spec_unchanged() -> None:
    tier = Tier(name="fast", model="openai:gpt-4.1", price=DECLARED)
    assert tier.price == DECLARED
    assert tier.spec()["price"] == {"input": 1.0, "cached_input": 0.1, "output": 2.0}


def test_an_agent_json_records_which_price_each_tier_used() -> None:
    agent = Agent(
        name="desk",
        instructions="Help.",
        tiers=(
            Tier(name="fast", model="openai:gpt-4.1"),
            Tier(name="reasoning", model="openai:o3", price=DECLARED),
        ),
    )
    prices = {t["name"]: t["price"] for t in json.loads(agent.to_json())["tiers"]}
    assert prices["fast"]["source"] == table_source()
    assert "source" not in prices["reasoning"]


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("openai:no-such-model", "not in the genai-prices"),
        (OpenAIModel(model="gpt-4.1", base_url="http://127.0.0.1:9/v1"), "declare it"),
    ],
)
def test_a_model_the_table_cannot_price_needs_a_declared_price(
    model: str | OpenAIModel, fragment: str
) -> None:
    with pytest.raises(SpecError, match=fragment) as raised:
        Tier(name="fast", model=model)
    assert raised.value.field == "tier.price"


@pytest.fixture
def fetched_table() -> Iterator[None]:
    """A table as genai-prices' `UpdatePrices` would install it: gpt-4.1 at $99."""
    bundled = data_snapshot.get_snapshot()
    _, info = bundled.find_provider_model("gpt-4.1", None, "openai", None)
    fake = genai_prices.types.ModelPrice(
        input_mtok=Decimal(99), cache_read_mtok=Decimal(99), output_mtok=Decimal(99)
    )
    provider = genai_prices.types.Provider(
        id="openai",
        name="OpenAI",
        api_pattern="",
        models=[genai_prices.types.ModelInfo(id="gpt-4.1", match=info.match, prices=fake)],
    )
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[provider], from_auto_update=True)
    )
    try:
        yield
    finally:
        data_snapshot.set_custom_snapshot(None)


@pytest.mark.usefixtures("fetched_table")
def test_prices_come_from_the_installed_table_even_after_a_fetch() -> None:
    assert genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000), "gpt-4.1", provider_id="openai"
    ).total_price == Decimal(99)
    assert Price.of("openai:gpt-4.1", at=AT).input == 2.0


def test_the_table_loads_only_for_a_tier_priced_from_it() -> None:
    code = """
import sys
from tierflow import Price, Tier
Tier(name="fast", model="openai:gpt-4.1", price=Price(input=1, cached_input=0.1, output=2))
print("genai_prices" in sys.modules)
Tier(name="fast", model="openai:gpt-4.1")
print("genai_prices" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]
