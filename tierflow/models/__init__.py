"""Tier models: references, provider settings, prices and usage, retries, and the
offline scripted model.

The names load on first use (`tierflow.foundation.lazy`): the OpenAI client comes with the first
model call, not with a price."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.models.openai import OpenAIModel
    from tierflow.models.price import Price, TokenUsage, usage_from_metadata
    from tierflow.models.resolve import parse_reference, resolve_model
    from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn

__all__ = [
    "OpenAIModel",
    "Price",
    "Scenario",
    "ScriptedChatModel",
    "TokenUsage",
    "Turn",
    "parse_reference",
    "resolve_model",
    "usage_from_metadata",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.models.openai": ("OpenAIModel",),
        "tierflow.models.price": ("Price", "TokenUsage", "usage_from_metadata"),
        "tierflow.models.resolve": ("parse_reference", "resolve_model"),
        "tierflow.models.scripted": ("Scenario", "ScriptedChatModel", "Turn"),
    },
)
