"""Turn a tier's model reference into a LangChain chat model."""

from __future__ import annotations

import os
import re

from langchain_core.language_models import BaseChatModel

from tierflow.errors import ModelError

MODEL_REFERENCE = re.compile(r"^(?P<provider>[a-z][a-z0-9_-]*):(?P<model>\S+)$")


def parse_reference(reference: str) -> tuple[str, str]:
    """Split `"provider:model"`; raise `ValueError` saying what shape is expected."""
    found = MODEL_REFERENCE.match(reference)
    if found is None:
        raise ValueError(
            f"{reference!r} is not a model reference; expected 'provider:model', "
            "e.g. 'openai:gpt-4.1'"
        )
    return found["provider"], found["model"]


def resolve_model(reference: str | BaseChatModel) -> BaseChatModel:
    """A chat model for `reference`.

    `openai:` references use langchain-openai's `ChatOpenAI`, which reads
    `OPENAI_API_KEY` and `OPENAI_BASE_URL` (any OpenAI-compatible server). For any other
    provider, declare the tier with a LangChain chat model object.
    """
    if isinstance(reference, BaseChatModel):
        return reference
    provider, model = parse_reference(reference)
    if provider == "openai":
        if not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
            raise ModelError(
                f"model {reference!r} needs OPENAI_API_KEY (or OPENAI_BASE_URL for an "
                "OpenAI-compatible server); run offline with the scripted model instead"
            )
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=model,
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
            stream_usage=True,
        )
    raise ModelError(
        f"model {reference!r}: provider {provider!r} has no built-in factory; pass a "
        "LangChain chat model object as the tier's model instead"
    )
