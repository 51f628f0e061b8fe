"""Turn a tier's model reference into a LangChain chat model and its retry policy."""

from __future__ import annotations

import hashlib
import re

from langchain_core.language_models import BaseChatModel

from tierflow.errors import ModelError
from tierflow.foundation.retry import NO_RETRY, RetryPolicy
from tierflow.models.openai import OpenAIModel

MODEL_REFERENCE = re.compile(r"^(?P<provider>[a-z][a-z0-9_-]*):(?P<model>\S+)$")
PROMPT_CACHE_KEY_CHARS = 64  # a routing hint, kept short; long names get a digest

ModelReference = str | BaseChatModel | OpenAIModel


def parse_reference(reference: str) -> tuple[str, str]:
    """Split `"provider:model"`; raise `ValueError` saying what shape is expected."""
    found = MODEL_REFERENCE.match(reference)
    if found is None:
        raise ValueError(
            f"{reference!r} is not a model reference; expected 'provider:model', "
            "e.g. 'openai:gpt-4.1'"
        )
    return found["provider"], found["model"]


def openai_model(reference: ModelReference) -> OpenAIModel | None:
    """The `OpenAIModel` a reference stands for (`openai:MODEL` or the object itself)."""
    if isinstance(reference, OpenAIModel):
        return reference
    if isinstance(reference, str):
        provider, model = parse_reference(reference)
        if provider == "openai":
            return OpenAIModel.from_reference(model)
        raise ModelError(
            f"model {reference!r}: provider {provider!r} has no built-in factory; pass a "
            "LangChain chat model object as the tier's model instead"
        )
    return None


def prompt_cache_key(agent: str, tier: str) -> str:
    """The `prompt_cache_key` of an agent's tier: `agent/tier` (long names shortened with
    a digest). Stable across runs and processes."""
    key = f"{agent}/{tier}"
    if len(key) <= PROMPT_CACHE_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: PROMPT_CACHE_KEY_CHARS - 17]}~{digest}"


def resolve_model(reference: ModelReference, *, cache_key: str | None = None) -> BaseChatModel:
    """A chat model for `reference`.

    `openai:` references and `OpenAIModel`s use langchain-openai's `ChatOpenAI` (key
    from `OPENAI_API_KEY` or the configured variable; `OPENAI_BASE_URL` for any
    OpenAI-compatible server), sending `cache_key` (see `prompt_cache_key`) as the
    `prompt_cache_key` unless the model sets its own. For any other provider, declare
    the tier with a LangChain chat model object.
    """
    config = openai_model(reference)
    if config is not None:
        return config.chat_model(cache_key)
    assert isinstance(reference, BaseChatModel)
    return reference


def retry_policy(reference: ModelReference) -> RetryPolicy:
    """How tierflow retries calls to this model. A chat model object passed in by the
    user is not retried by tierflow: its own client decides."""
    config = openai_model(reference)
    return config.retry_policy() if config is not None else NO_RETRY


def model_label(reference: ModelReference) -> str:
    """The model's name as runs and cost records show it."""
    if isinstance(reference, str):
        return reference
    if isinstance(reference, OpenAIModel):
        return reference.model
    return str(getattr(reference, "model_name", type(reference).__name__))
