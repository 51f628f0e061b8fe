"""Tier models: references, prices, usage, and the offline scripted model."""

from tierflow.models.price import Price, TokenUsage, usage_from_metadata
from tierflow.models.resolve import parse_reference, resolve_model
from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn

__all__ = [
    "Price",
    "Scenario",
    "ScriptedChatModel",
    "TokenUsage",
    "Turn",
    "parse_reference",
    "resolve_model",
    "usage_from_metadata",
]
