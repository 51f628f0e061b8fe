"""Prices of known models from `genai-prices`, pydantic's maintained price table.

The table ships inside the package (`genai_prices.data`); tierflow reads that bundled
copy only. genai-prices can fetch a newer table (`UpdatePrices`) — tierflow never starts
it, and reads the bundled providers directly, so even a process where something else
started it prices from the installed version. Loaded on first use: `import tierflow`
stays light.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING

from tierflow.errors import ModelError
from tierflow.models.price import SERVICE_TIERS, Price

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo

TABLE = "genai-prices"


def table_source() -> str:
    """How a price from the table is recorded: `"genai-prices 0.2.3"`."""
    return f"{TABLE} {version(TABLE)}"


@cache
def _snapshot() -> DataSnapshot:
    from genai_prices import data
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=data.providers, from_auto_update=False)


def table_price(provider: str, model: str, *, at: datetime | None = None) -> Price:
    """The table's price of `model` at `provider` (an id such as `"openai"`), in force
    at `at` (default: now), with its `priority` and `flex` service-tier prices where
    they differ. Raises `ModelError` when the table has no per-token price for it."""
    try:
        _, info = _snapshot().find_provider_model(model, None, provider, None)
    except LookupError as error:
        raise ModelError(
            f"{provider}:{model} is not in the {table_source()} table ({error}); "
            "declare its price: Price(input=..., cached_input=..., output=...)"
        ) from None
    when = at or datetime.now(UTC)
    base = _price(info, provider, model, when, None)
    tiers: dict[str, Price] = {}
    for name in SERVICE_TIERS:
        other = _price(info, provider, model, when, name)
        if (other.input, other.cached_input, other.output) != (
            base.input,
            base.cached_input,
            base.output,
        ):
            tiers[name] = other
    return base.model_copy(update={**tiers, "source": table_source()})


def _price(
    info: ModelInfo, provider: str, model: str, when: datetime, service_tier: str | None
) -> Price:
    context = None if service_tier is None else {"service_tier": service_tier}
    prices = info.get_prices(when, context)
    values: dict[str, Decimal | None] = {}
    for key in ("input_mtok", "cache_read_mtok", "output_mtok"):
        value = getattr(prices, key)
        if value is not None and not isinstance(value, Decimal):  # tiered by prompt length
            raise ModelError(
                f"{provider}:{model}: the {table_source()} price of {key} depends on the "
                "prompt's length, which a flat Price can't say; declare the tier's price"
            )
        values[key] = value
    if values["input_mtok"] is None or values["output_mtok"] is None:
        raise ModelError(
            f"{provider}:{model}: the {table_source()} table has no per-token price for "
            "it; declare the tier's price"
        )
    cached = values["cache_read_mtok"]
    return Price(
        input=float(values["input_mtok"]),
        # Without a cache-read price the provider bills cached input as input.
        cached_input=float(values["input_mtok"] if cached is None else cached),
        output=float(values["output_mtok"]),
    )
