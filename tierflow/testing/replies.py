"""What the local OpenAI-compatible server answers, and the wire format it answers in.

A `Reply` is one assistant turn (text, tool calls, usage); a `Fault` is a scripted
failure (an HTTP error, a dropped connection, a stalled response). The functions below
turn a reply into a Chat Completions body or into the SSE chunks of a streamed one,
shaped like OpenAI's: tool-call fragments keyed by `index`, and a last chunk with only
`usage` when the request asked for it with `stream_options.include_usage`.
`check_conversation` rejects what OpenAI rejects before answering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# Arguments given as a string are sent verbatim, so a test can send malformed JSON.
Arguments = Mapping[str, Any] | str
CHARS_PER_TOKEN = 4
ARGUMENT_FRAGMENT = 12  # characters of a tool call's arguments per streamed chunk
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True)
class Usage:
    """Token counts the server reports. `prompt_tokens` includes `cached_tokens`;
    `completion_tokens` includes `reasoning_tokens` (as OpenAI counts them)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass(frozen=True)
class Reply:
    """One assistant turn: text, any number of tool calls, and the usage to report.

    Without `usage` the server estimates it at four characters a token (nothing
    cached, no reasoning). `service_tier` is echoed in the response; "priority" and
    "flex" make langchain-openai prefix the usage detail keys.
    """

    text: str = ""
    calls: Sequence[tuple[str, Arguments]] = ()
    usage: Usage | None = None
    service_tier: str = "default"


FaultKind = Literal["http", "drop", "stall"]


@dataclass(frozen=True)
class Fault:
    """A scripted failure, served in place of one reply. Build it with `http`, `drop`
    or `stall`."""

    kind: FaultKind
    status: int = 0
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    after_chunks: int = 0
    seconds: float = 0.0

    @classmethod
    def http(
        cls, status: int, *, retry_after: float | str | None = None, message: str | None = None
    ) -> Fault:
        """An HTTP error with an OpenAI-style error body, e.g. 429 with `Retry-After`."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(
            kind="http", status=status, message=message or f"scripted {status}", headers=headers
        )

    @classmethod
    def drop(cls, *, after_chunks: int = 2) -> Fault:
        """Close the connection: a streamed request gets its headers and `after_chunks`
        chunks first (a connection dropped mid-stream); any other gets no response."""
        return cls(kind="drop", after_chunks=after_chunks)

    @classmethod
    def stall(cls, seconds: float = 30.0) -> Fault:
        """Answer nothing for `seconds` (or until the server stops), then close: a
        response slower than the client's timeout."""
        return cls(kind="stall", seconds=seconds)


def error_body(message: str, status: int) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
    return {
        "error": {
            "message": message,
            "type": kinds.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": None,
            "code": None,
        }
    }


def arguments_text(arguments: Arguments) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(dict(arguments))


def estimate_usage(request: Mapping[str, Any], reply: Reply) -> Usage:
    """Four characters a token over what was sent and what is answered."""
    prompt = json.dumps(request.get("messages", [])) + json.dumps(request.get("tools", []))
    answer = reply.text + "".join(name + arguments_text(args) for name, args in reply.calls)
    return Usage(
        prompt_tokens=max(1, len(prompt) // CHARS_PER_TOKEN),
        completion_tokens=max(1, len(answer) // CHARS_PER_TOKEN),
    )


def _tool_calls(reply: Reply, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments_text(args)},
        }
        for call_id, (name, args) in zip(call_ids, reply.calls, strict=True)
    ]


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.calls else "stop"


def completion_body(
    reply: Reply, *, completion_id: str, model: str, call_ids: Sequence[str], usage: Usage
) -> dict[str, Any]:
    """The JSON body of a non-streamed chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.calls:
        message["tool_calls"] = _tool_calls(reply, call_ids)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(reply),
                "logprobs": None,
            }
        ],
        "usage": usage.to_openai(),
        "service_tier": reply.service_tier,
        "system_fingerprint": "tierflow-testing",
    }


def text_pieces(text: str) -> list[str]:
    """The text in word-sized pieces, as a model streams tokens."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def stream_chunks(
    reply: Reply,
    *,
    completion_id: str,
    model: str,
    call_ids: Sequence[str],
    usage: Usage | None,
) -> Iterator[dict[str, Any]]:
    """The SSE chunks of a streamed chat completion, in order. With `usage` (the request
    asked for it), every chunk carries `"usage": null` and a last chunk has only usage."""
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "service_tier": reply.service_tier,
        "system_fingerprint": "tierflow-testing",
    }
    if usage is not None:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in text_pieces(reply.text):
        yield chunk({"content": piece})
    for index, call in enumerate(_tool_calls(reply, call_ids)):
        arguments = call["function"]["arguments"]
        head = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [{"index": index, **head}]})
        for start in range(0, len(arguments), ARGUMENT_FRAGMENT):
            fragment = arguments[start : start + ARGUMENT_FRAGMENT]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, _finish_reason(reply))
    if usage is not None:
        yield {**base, "choices": [], "usage": usage.to_openai()}


class RequestRejected(Exception):
    """A request the server answers with an HTTP error instead of a completion."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_conversation(messages: Any) -> None:
    """Raise `RequestRejected` (400) where OpenAI would reject the conversation."""
    if not isinstance(messages, list) or not messages:
        raise RequestRejected(400, "'messages' must be a non-empty array")
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise RequestRejected(400, f"messages[{index}]: invalid role {role!r}")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise RequestRejected(
                    400,
                    f"messages[{index}]: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' (unknown tool_call_id {call_id!r})",
                )
            pending.remove(call_id)
            continue
        if pending:
            raise RequestRejected(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'; missing: {', '.join(pending)}",
            )
        if role == "assistant":
            pending = [str(call["id"]) for call in message.get("tool_calls") or []]
    if pending:
        raise RequestRejected(400, f"tool calls without a tool message: {', '.join(pending)}")
