"""An offline chat model that replays declared turns.

It is a real LangChain chat model (`bind_tools`, sync and async, `usage_metadata`), so the
whole graph runs with no network and no key. Which turn it plays is a pure function of
the conversation it is given — the scenario whose `match` text occurs in the user's
latest request, and the number of model turns since that request — so a run resumed
after a crash replays exactly what an uninterrupted run would have.

Usage is *declared* when a turn gives it, otherwise *estimated* (four characters a
token); `response_metadata["usage_source"]` says which, and so does every cost record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from tierflow.errors import ScriptExhausted
from tierflow.models.messages import last_request_index, text_of
from tierflow.models.price import TokenUsage
from tierflow.spec_model import SpecModel

CHARS_PER_TOKEN = 4


class Turn(SpecModel):
    """One declared model turn: text, tool calls (any number), and optionally usage."""

    text: str = ""
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    usage: TokenUsage | None = None
    reasoning_tokens: int = Field(default=0, ge=0)


class Scenario(SpecModel):
    """The turns played for a request containing `match` (case-insensitive)."""

    match: str
    turns: tuple[Turn, ...]


class ScriptedChatModel(BaseChatModel):
    """Replays `scenarios`; raises `ScriptExhausted` when nothing is declared."""

    scenarios: tuple[Scenario, ...]
    model_name: str = "scripted"

    @property
    def _llm_type(self) -> str:
        return "tierflow-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn, turn_key = self._select(messages)
        calls = [
            ToolCall(name=name, args=dict(args), id=f"call_{turn_key}_{position}")
            for position, (name, args) in enumerate(turn.calls)
        ]
        usage, source = self._usage(messages, turn, kwargs.get("tools", []))
        message = AIMessage(
            content=turn.text,
            tool_calls=calls,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "usage_source": source},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _select(self, messages: Sequence[BaseMessage]) -> tuple[Turn, str]:
        start = last_request_index(messages)
        if start is None:
            raise ScriptExhausted("scripted model: the conversation has no user request")
        request = text_of(messages[start])
        scenario = next((s for s in self.scenarios if s.match.lower() in request.lower()), None)
        if scenario is None:
            raise ScriptExhausted(
                f"scripted model {self.model_name!r}: no scenario matches the request "
                f"{request[:80]!r}"
            )
        played = sum(isinstance(m, AIMessage) for m in messages[start + 1 :])
        if played >= len(scenario.turns):
            raise ScriptExhausted(
                f"scripted model {self.model_name!r}: scenario {scenario.match!r} has "
                f"{len(scenario.turns)} turns and all were played"
            )
        # Tool call ids must be unique in a thread and identical on replay.
        digest = hashlib.sha256(f"{start}:{request}".encode()).hexdigest()[:8]
        return scenario.turns[played], f"{digest}_{played}"

    @staticmethod
    def _usage(
        messages: Sequence[BaseMessage], turn: Turn, tools: Sequence[Mapping[str, Any]]
    ) -> tuple[UsageMetadata, str]:
        if turn.usage is not None:
            counts, source = turn.usage, "declared"
        else:
            # The prompt a provider bills: every message, its tool calls, the tool schemas.
            prompt_chars = len(json.dumps(list(tools))) + sum(
                len(text_of(m)) + len(json.dumps(_calls_of(m))) for m in messages
            )
            answer_chars = len(turn.text) + len(json.dumps([list(c) for c in turn.calls]))
            counts = TokenUsage(
                input_tokens=max(1, prompt_chars // CHARS_PER_TOKEN),
                cached_tokens=0,
                output_tokens=max(1, answer_chars // CHARS_PER_TOKEN) + turn.reasoning_tokens,
                reasoning_tokens=turn.reasoning_tokens,
            )
            source = "estimated"
        metadata = UsageMetadata(
            input_tokens=counts["input_tokens"],
            output_tokens=counts["output_tokens"],
            total_tokens=counts["input_tokens"] + counts["output_tokens"],
            input_token_details=InputTokenDetails(cache_read=counts["cached_tokens"]),
            output_token_details=OutputTokenDetails(reasoning=counts["reasoning_tokens"]),
        )
        return metadata, source


def _calls_of(message: BaseMessage) -> list[Mapping[str, Any]]:
    return list(message.tool_calls) if isinstance(message, AIMessage) else []
