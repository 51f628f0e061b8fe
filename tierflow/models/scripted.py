"""An offline chat model that replays declared turns.

It is a real LangChain chat model (`bind_tools`, sync and async, `usage_metadata`), so the
whole graph runs with no network and no key. Which turn it plays is a pure function of
the conversation it is given — the scenario whose `match` text occurs in the user's
latest request, and the number of model turns since that request — so a run resumed
after a crash replays exactly what an uninterrupted run would have.

Usage is *declared* when a turn gives it, otherwise *estimated* (four characters a
token); `response_metadata["usage_source"]` says which, and so does every cost record.
The estimate measures each message once, not once per call, so a run of n turns costs
O(n) measurements although every call re-sends the whole history.

Cached input is *modelled* as the provider bills it (`tierflow.models.cache`, OpenAI's
rule by default): an estimated call's `cache_read` is the prefix it shares with the
model's earlier calls under the same `prompt_cache_key` (a call's keyword, e.g. from
`bind`), and `response_metadata["cache_source"]` is `"modelled"`. A declared usage
keeps its declared cached tokens. `prompt_cache=None` turns the model off (nothing
cached, as before).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from tierflow.errors import ScriptExhausted
from tierflow.foundation.spec import SpecModel
from tierflow.models.cache import OPENAI_CACHE, CachePolicy, PromptCache, Segment, segment
from tierflow.models.messages import last_request_index, text_of
from tierflow.models.price import TokenUsage

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


class MessageSizes:
    """The prompt characters (and the cache segment) of each message measured so far,
    by message object.

    A run re-sends its whole history on every call, and the graph passes the same
    message objects each time, so each is measured once. An entry lives as long as its
    message (a weak reference); a message whose `content` or `tool_calls` was assigned
    anew is measured again. (An edit inside them in place is not seen: LangGraph and
    tierflow replace messages, they don't edit them.)"""

    def __init__(self) -> None:
        self._sizes: dict[int, tuple[weakref.ref[BaseMessage], object, object, Segment]] = {}

    def chars(self, message: BaseMessage) -> int:
        return self.segment(message).chars

    def segment(self, message: BaseMessage) -> Segment:
        """`message` as a provider's prompt cache sees it: its canonical text's digest and
        the characters it bills."""
        key = id(message)
        calls = message.tool_calls if isinstance(message, AIMessage) else None
        entry = self._sizes.get(key)
        if (
            entry is not None
            and entry[0]() is message
            and entry[1] is message.content
            and entry[2] is calls
        ):
            return entry[3]
        part = segment(canonical_text(message), message_chars(message))
        self._sizes[key] = (weakref.ref(message, self._forget(key)), message.content, calls, part)
        return part

    def __len__(self) -> int:
        return len(self._sizes)

    def __reduce__(self) -> tuple[type[MessageSizes], tuple[()]]:
        # A copy (pickle, deepcopy) starts empty: the entries are about these objects.
        return (MessageSizes, ())

    def _forget(self, key: int) -> Callable[[weakref.ref[BaseMessage]], None]:
        def forget(reference: weakref.ref[BaseMessage]) -> None:
            entry = self._sizes.get(key)
            if entry is not None and entry[0] is reference:
                del self._sizes[key]

        return forget


def message_chars(message: BaseMessage) -> int:
    """The characters a provider bills for `message`: its text and its tool calls."""
    return len(text_of(message)) + len(json.dumps(_calls_of(message)))


def canonical_text(message: BaseMessage) -> str:
    """`message` as a prompt cache compares it: its role, its text, its tool calls."""
    return json.dumps([message.type, text_of(message), _calls_of(message)])


class ScriptedChatModel(BaseChatModel):
    """Replays `scenarios`; raises `ScriptExhausted` when nothing is declared.

    `latency_s`: how long an async call (`ainvoke`) waits before it answers, as a
    provider's round trip would — for benchmarks of concurrent runs. Sync calls answer
    at once.

    `prompt_cache`: how cached input is counted (see the module); None: never cached."""

    scenarios: tuple[Scenario, ...]
    model_name: str = "scripted"
    latency_s: float = Field(default=0.0, ge=0.0)
    prompt_cache: CachePolicy | None = OPENAI_CACHE
    _measured: MessageSizes = PrivateAttr(default_factory=MessageSizes)
    _cache: PromptCache = PrivateAttr(default_factory=PromptCache)

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
        usage, source = self._usage(messages, turn, kwargs)
        metadata = {"model_name": self.model_name, "usage_source": source}
        if source == "estimated" and self.prompt_cache is not None:
            metadata["cache_source"] = "modelled"
        message = AIMessage(
            content=turn.text, tool_calls=calls, usage_metadata=usage, response_metadata=metadata
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # On the event loop, not in an executor thread (LangChain's default): the
        # answer is computed in microseconds, and a subclass's `_generate` still sees
        # every call.
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self._generate(messages, stop, None, **kwargs)

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

    def _usage(
        self, messages: Sequence[BaseMessage], turn: Turn, kwargs: Mapping[str, Any]
    ) -> tuple[UsageMetadata, str]:
        # The prompt a provider bills, in the order it hashes it: the tool schemas, then
        # every message with its tool calls.
        tools: Sequence[Mapping[str, Any]] = kwargs.get("tools", [])
        measured = self._measured  # a pydantic private attribute: slow to look up
        parts = [segment(json.dumps(list(tools))), *(measured.segment(m) for m in messages)]
        prompt_tokens = max(1, sum(p.chars for p in parts) // CHARS_PER_TOKEN)
        cached = 0
        if self.prompt_cache is not None:
            key = str(kwargs.get("prompt_cache_key") or "")
            cached = self._cache.cached_tokens(
                self.prompt_cache, key, parts, prompt_tokens, CHARS_PER_TOKEN
            )
        if turn.usage is not None:
            counts, source = turn.usage, "declared"
        else:
            answer_chars = len(turn.text) + len(json.dumps([list(c) for c in turn.calls]))
            counts = TokenUsage(
                input_tokens=prompt_tokens,
                cached_tokens=cached,
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
