"""`OpenAIModel`: a tier's model on OpenAI's Chat Completions API — OpenAI itself,
Azure OpenAI, or any compatible server (vLLM, Ollama, llama.cpp).

It is spec data: it names the environment variable that holds the API key, never the
key, so an agent's JSON can be reviewed and committed. The key and `OPENAI_BASE_URL` are
read when the model is first called, not when the agent is declared.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from langchain_core.language_models import BaseChatModel
from pydantic import Field, SecretStr, field_validator, model_validator

from tierflow.errors import ModelError
from tierflow.foundation.retry import RetryPolicy
from tierflow.foundation.spec import SpecModel
from tierflow.models.retry import provider_retry_policy

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Headers that carry credentials: their values would be secrets in the spec.
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
# Sent as the key to a server that takes none (vLLM, Ollama): the client requires one.
NO_KEY = "no-key"

# OpenAI's reasoning models, which take `reasoning_effort`; its other chat models
# (gpt-4.1, gpt-4o, the `-chat` variants) answer a request carrying one with a 400.
REASONING_MODELS = re.compile(r"^(o[1-9]|gpt-5(?!.*-chat)|gpt-oss|codex)", re.IGNORECASE)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
ServiceTier = Literal["auto", "default", "flex", "priority"]


class OpenAIModel(SpecModel):
    """A model behind an OpenAI-compatible Chat Completions endpoint.

    `base_url` defaults to `$OPENAI_BASE_URL`, then to OpenAI. The key is read from the
    variable named by `api_key_env`; a server with a base URL may need none.
    `reasoning_effort` is sent only when set (only reasoning models accept it).
    `takes_effort`: whether the model takes a `reasoning_effort` at all, so that a route's
    effort is sent to it; by default, when the spec sets an effort or the name is one of
    OpenAI's reasoning models (o1…, gpt-5…, gpt-oss…, codex…) — set it for a deployment
    or a compatible server's model whose name doesn't say.
    `headers` are extra, non-secret HTTP headers (e.g. a gateway's routing header).
    `prompt_cache_key` is sent with every request so that the provider routes prompts
    with the same prefix to the same cache: this key if set, otherwise the one tierflow
    derives per agent and tier; `send_prompt_cache_key=False` for a compatible server
    that rejects the parameter.
    """

    spec_prefix = "model"

    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    reasoning_effort: ReasoningEffort | None = None
    takes_effort: bool | None = None
    service_tier: ServiceTier | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    prompt_cache_key: str | None = Field(default=None, min_length=1)
    send_prompt_cache_key: bool = True

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} must start with http:// or https://")
        return url

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not ENV_NAME.match(name):
            raise ValueError(
                "names the environment variable that holds the key (e.g. OPENAI_API_KEY), "
                "not the key itself"
            )
        return name

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in headers if name.lower() in SECRET_HEADERS)
        if secret:
            raise ValueError(
                f"{secret} would put a credential in the spec; the key comes from the "
                "variable named by api_key_env"
            )
        return headers

    @model_validator(mode="after")
    def _effort_taken(self) -> OpenAIModel:
        if self.takes_effort is False and self.reasoning_effort is not None:
            raise ValueError(
                "reasoning_effort is set, but takes_effort=False says the model takes none"
            )
        return self

    @classmethod
    def from_reference(cls, model: str) -> OpenAIModel:
        """The model of an `openai:MODEL` reference, with the default settings."""
        return cls(model=model)

    def accepts_effort(self) -> bool:
        """Whether a route's `reasoning_effort` may be sent to this model."""
        if self.takes_effort is not None:
            return self.takes_effort
        name = self.model.rsplit("/", 1)[-1]
        return self.reasoning_effort is not None or bool(REASONING_MODELS.match(name))

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    @property
    def label(self) -> str:
        """`gpt-4.1 at http://…/v1` — the model and where it is served, for messages."""
        return f"{self.model} at {self.resolved_base_url() or 'api.openai.com'}"

    def retry_policy(self) -> RetryPolicy:
        return provider_retry_policy(self.max_retries, self.backoff_s)

    def chat_model(self, cache_key: str | None = None) -> BaseChatModel:
        """A `ChatOpenAI` for this model. It never retries by itself (`max_retries=0`):
        tierflow retries, see `tierflow.models.retry`. `cache_key`: the
        `prompt_cache_key` to send when the spec sets none."""
        base_url = self.resolved_base_url()
        key = os.environ.get(self.api_key_env)
        if not key:
            if base_url is None:
                raise ModelError(
                    f"model {self.model!r} needs ${self.api_key_env} (or a base_url / "
                    "OPENAI_BASE_URL for an OpenAI-compatible server); run offline with "
                    "the scripted model instead"
                )
            key = NO_KEY
        from langchain_openai import ChatOpenAI

        cache_key = self.prompt_cache_key or cache_key
        # A request parameter of OpenAI's own, not a field of ChatOpenAI: `model_kwargs`
        # puts it at the top level of the body, where OpenAI reads it.
        sent = {"prompt_cache_key": cache_key} if cache_key and self.send_prompt_cache_key else {}

        return ChatOpenAI(
            model=self.model,
            base_url=base_url,
            api_key=SecretStr(key),
            timeout=self.timeout_s,
            max_retries=0,
            # Off by default with a custom base_url; without it a stream reports no usage.
            stream_usage=True,
            # Some model names would switch to the Responses API; tierflow speaks Chat
            # Completions, which every compatible server implements.
            use_responses_api=False,
            reasoning_effort=self.reasoning_effort,
            service_tier=self.service_tier,
            default_headers=dict(self.headers) or None,
            model_kwargs=sent,
        )
