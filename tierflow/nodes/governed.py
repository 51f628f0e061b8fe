"""What a governed model call reserves: its estimated maximum cost.

(The governor itself reaches the nodes through the run context: `nodes/context.py`.)
The model node reserves a model call's estimated *maximum* cost: the prompt's UTF-8
bytes bound its input tokens (a byte-level tokenizer never makes more tokens than
bytes), and the model's `max_tokens` — or the policy's `max_output_tokens` — bounds
its output, both priced at the uncached input rate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from tierflow.governance.budget import Spend
from tierflow.governance.policy import Policy
from tierflow.models.price import SERVICE_TIERS, Price, TokenUsage


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


def output_bound(chat: object, policy: Policy) -> int:
    """The most output tokens the call may produce: the model's own `max_tokens` when it
    declares one, else the policy's `max_output_tokens`."""
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        declared = getattr(chat, name, None)
        if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
            return declared
    return policy.max_output_tokens


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
