"""What a model call is sent beyond its messages, and what a governed one reserves.

(The governor itself reaches the nodes through the run context: `nodes/context.py`.)
Each call is sent the route decision's reasoning effort (for its tier, on models that
take one) and an output-token cap: the tier's `max_output_tokens` (for the call's
effort), else the model's own `max_tokens`, else — governed — the policy's
`max_output_tokens`. A governed call reserves its estimated *maximum* cost at that same
cap: the prompt's UTF-8 bytes bound its input tokens (a byte-level tokenizer never
makes more tokens than bytes), the cap bounds its output, both priced at the uncached
input rate. A provider that reports more output than it was capped at is in violation:
what it reported is settled (it was spent) and recorded as its overspend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from tierflow.governance.budget import Spend
from tierflow.governance.policy import Policy
from tierflow.models.openai import ReasoningEffort
from tierflow.models.price import SERVICE_TIERS, Price, TokenUsage
from tierflow.models.scripted import ScriptedChatModel

# A tier's declared output cap: one for every call, or one per reasoning effort.
OutputCap = int | Mapping[ReasoningEffort, int] | None


@dataclass(frozen=True)
class CallOptions:
    """What a call sends besides its messages: the effort and the output cap."""

    effort: str | None = None
    cap: int | None = None

    def kwargs(self, chat: object, takes_effort: bool = True) -> dict[str, Any]:
        """The options as `chat` takes them: `reasoning_effort` and
        `max_completion_tokens` for an OpenAI chat model; `max_tokens` (LangChain's name)
        for any other. An effort goes only to models that take one: OpenAI's reasoning
        models (`takes_effort`, from `OpenAIModel.accepts_effort`) and the scripted
        model, which accepts and ignores it."""
        openai = _is_openai(chat)
        sent: dict[str, Any] = {}
        takes = (openai and takes_effort) or isinstance(chat, ScriptedChatModel)
        if self.effort is not None and takes:
            sent["reasoning_effort"] = self.effort
        if self.cap is not None:
            sent["max_completion_tokens" if openai else "max_tokens"] = self.cap
        return sent

    def sends_effort(self, chat: object, takes_effort: bool = True) -> bool:
        return "reasoning_effort" in self.kwargs(chat, takes_effort)


def _is_openai(chat: object) -> bool:
    from langchain_openai.chat_models.base import BaseChatOpenAI

    return isinstance(chat, BaseChatOpenAI)


def output_cap(
    reference: object, declared: OutputCap, effort: str | None, policy: Policy | None
) -> int | None:
    """The output tokens a call is capped at (and, governed, reserved at): the tier's
    `declared` cap (for `effort`, when declared per effort), else the model's own
    `max_tokens`, else the policy's `max_output_tokens` (None: ungoverned, no cap)."""
    if isinstance(declared, int):
        return declared
    for named, cap in (declared or {}).items():
        if named == effort:
            return cap
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        own = getattr(reference, name, None)
        if isinstance(own, int) and not isinstance(own, bool) and own > 0:
            return own
    return None if policy is None else policy.max_output_tokens


def cap_violation(usage: TokenUsage, cap: int | None) -> str | None:
    """What the provider did wrong when it reports more output than it was capped at."""
    if cap is None or usage["output_tokens"] <= cap:
        return None
    return (
        f"provider violation: reported {usage['output_tokens']} output tokens for a call "
        f"capped at {cap}; the overspend is the provider's"
    )


def prompt_bytes(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> int:
    """The UTF-8 size of what a model call sends: every message, its tool calls, the
    tool schemas — an upper bound on the prompt's tokens."""
    size = len(json.dumps(list(tools), ensure_ascii=False).encode())
    for message in messages:
        content = (
            message.content
            if isinstance(message.content, str)
            else json.dumps(message.content, ensure_ascii=False, default=str)
        )
        size += len(content.encode()) + 16  # role and framing
        if isinstance(message, AIMessage) and message.tool_calls:
            size += len(json.dumps(message.tool_calls, ensure_ascii=False, default=str).encode())
    return size


def estimate_spend(input_tokens: int, output_tokens: int, price: Price) -> Spend:
    """The most a call of that size can cost on `price` — on its dearest service tier,
    with no cache discount."""
    usage = TokenUsage(
        input_tokens=input_tokens,
        cached_tokens=0,
        output_tokens=output_tokens,
        reasoning_tokens=0,
    )
    tiers = (None, *SERVICE_TIERS)
    usd = max(price.for_service_tier(tier).cost(usage) for tier in tiers)
    return Spend(usd=usd, tokens=input_tokens + output_tokens)


def provider_of(label: str) -> str:
    """`openai:gpt-4.1` → `openai`: the name caps and rate limits are declared under."""
    return label.split(":", 1)[0] if ":" in label else label
