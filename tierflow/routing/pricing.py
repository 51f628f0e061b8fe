"""What each labelled request costs on each tier, for pricing a router's decisions.

Input tokens are the prompt's length at four characters a token. Output tokens are the
tier's recorded answer length where the data has one (`*_response_chars`), else a
declared default (MMLU records none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierflow.models.price import Price, expected_cost
from tierflow.routing.offline.data import CHARS_PER_TOKEN, RoutingData

FloatArray = npt.NDArray[np.float64]

# The example's tiers: `fast` is the weak one, `reasoning` the strong one.
DEFAULT_WEAK_PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
DEFAULT_STRONG_PRICE = Price(input=1.75, cached_input=0.175, output=14.00)
DEFAULT_OUTPUT_TOKENS = 256.0


@dataclass(frozen=True)
class Pricing:
    """Two tiers' prices and how to count tokens where the data is silent."""

    weak: Price = DEFAULT_WEAK_PRICE
    strong: Price = DEFAULT_STRONG_PRICE
    output_tokens: float = DEFAULT_OUTPUT_TOKENS  # when the data has no lengths
    cached_share: float = 0.0

    def costs(self, data: RoutingData) -> tuple[FloatArray, FloatArray]:
        """Each request's cost in USD on the weak and on the strong tier."""
        inputs = np.array([len(p) / CHARS_PER_TOKEN for p in data.prompts], dtype=np.float64)
        default = np.full(len(data), self.output_tokens)
        weak_out = data.weak_output_tokens if data.weak_output_tokens is not None else default
        strong_out = data.strong_output_tokens if data.strong_output_tokens is not None else default
        return self._cost(self.weak, inputs, weak_out), self._cost(self.strong, inputs, strong_out)

    def _cost(self, price: Price, inputs: FloatArray, outputs: FloatArray) -> FloatArray:
        pairs = zip(inputs, outputs, strict=True)
        return np.array([expected_cost(price, i, self.cached_share, o) for i, o in pairs])

    def describe(self, data: RoutingData) -> dict[str, object]:
        recorded = data.weak_output_tokens is not None and data.strong_output_tokens is not None
        return {
            "weak": self.weak.model_dump(exclude_none=True),
            "strong": self.strong.model_dump(exclude_none=True),
            "input_tokens": "prompt characters / 4",
            "output_tokens": "recorded answer characters / 4"
            if recorded
            else f"{self.output_tokens:g} per answer (the data records no lengths)",
            "cached_share": self.cached_share,
        }
