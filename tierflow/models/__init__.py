"""Tier models: references, provider settings, prices and usage, retries, and the
offline scripted model."""

from tierflow.models.openai import OpenAIModel
from tierflow.models.price import Price, TokenUsage, usage_from_metadata
from tierflow.models.resolve import parse_reference, resolve_model
from tierflow.models.retry import RetryPolicy
from tierflow.models.scripted import Scenario, ScriptedChatModel, Turn

__all__ = [
    "OpenAIModel",
    "Price",
    "RetryPolicy",
    "Scenario",
    "ScriptedChatModel",
    "TokenUsage",
    "Turn",
    "parse_reference",
    "resolve_model",
    "usage_from_metadata",
]
