"""The local OpenAI-compatible server speaks the protocol: raw HTTP, read as bytes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest

from tierflow.testing import Fault, OpenAIServer, Reply, Usage

USER = {"role": "user", "content": "Where is order 1007?"}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def exchange(server: OpenAIServer, body: dict[str, Any]) -> tuple[int, bytes, Message]:
    """Status, body and headers of one POST to the completions endpoint."""
    request = urllib.request.Request(
        f"{server.url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers


def post(server: OpenAIServer, body: dict[str, Any]) -> tuple[int, bytes]:
    status, raw, _ = exchange(server, body)
    return status, raw


def events(raw: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded except the final `[DONE]`."""
    lines = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


TWO_CALLS = Reply(
    text="Checking.",
    calls=(("order_status", {"order_id": 1007}), ("search_policies", {"query": "late delivery"})),
    usage=Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=64, reasoning_tokens=12),
)


def test_a_completion_has_tool_calls_with_json_string_arguments_and_full_usage(
    server: OpenAIServer,
) -> None:
    server.push(TWO_CALLS)
    status, raw = post(server, {"model": "gpt-4.1", "messages": [USER]})
    assert status == 200
    body = json.loads(raw)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["order_status", "search_policies"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"order_id": 1007}
    assert len({c["id"] for c in calls}) == 2
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 12
    assert body["usage"]["total_tokens"] == 150


def test_a_stream_sends_fragments_by_index_and_a_last_usage_only_chunk(
    server: OpenAIServer,
) -> None:
    server.push(TWO_CALLS)
    status, raw = post(
        server,
        {
            "model": "gpt-4.1",
            "messages": [USER],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    *chunks, done = events(raw)
    assert done == "[DONE]"
    usage_chunk = chunks.pop()
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    assert all(c["usage"] is None for c in chunks)  # as OpenAI sends them
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking."
    fragments: dict[int, list[dict[str, Any]]] = {}
    for delta in deltas:
        for fragment in delta.get("tool_calls", []):
            fragments.setdefault(fragment["index"], []).append(fragment)
    assert sorted(fragments) == [0, 1]
    for index, (name, args) in enumerate(TWO_CALLS.calls):
        first, *rest = fragments[index]
        assert first["function"]["name"] == name and first["id"]
        assert len(rest) > 1, "the arguments arrive in several fragments"
        assert json.loads("".join(f["function"]["arguments"] for f in rest)) == args
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_without_include_usage_a_stream_has_no_usage(server: OpenAIServer) -> None:
    server.push(Reply(text="Hi."))
    _, raw = post(server, {"model": "m", "messages": [USER], "stream": True})
    *chunks, done = events(raw)
    assert done == "[DONE]"
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_scripts_are_keyed_by_conversation_and_turn(server: OpenAIServer) -> None:
    server.script("order 1007", Reply(text="first"), Reply(text="second"))
    server.script("refund", Reply(text="refund reply"))

    def answer(messages: list[dict[str, Any]]) -> str:
        _, raw = post(server, {"model": "m", "messages": messages})
        return str(json.loads(raw)["choices"][0]["message"]["content"])

    assert answer([USER]) == "first"
    assert answer([{"role": "user", "content": "A refund, please"}]) == "refund reply"
    assert answer([USER, {"role": "assistant", "content": "first"}]) == "second"
    # A later request in the same thread selects its own script.
    later = [USER, {"role": "assistant", "content": "x"}, {"role": "user", "content": "refund"}]
    assert answer(later) == "refund reply"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            [USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            "must be a response to a preceding message with 'tool_calls'",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "user", "content": "and?"},
            ],
            "must be followed by tool messages",
        ),
        ([], "non-empty"),
        ([{"role": "robot", "content": "x"}], "invalid role"),
    ],
)
def test_conversations_openai_rejects_are_rejected(
    server: OpenAIServer, messages: list[dict[str, Any]], fragment: str
) -> None:
    server.push(Reply(text="never sent"))
    status, raw = post(server, {"model": "m", "messages": messages})
    assert status == 400
    assert fragment in json.loads(raw)["error"]["message"]
    (recorded,) = server.requests
    assert recorded.answer is None  # the scripted reply was not used up
    assert len(server.completions()) == 0


def test_nothing_scripted_is_a_clear_400(server: OpenAIServer) -> None:
    status, raw = post(server, {"model": "m", "messages": [USER]})
    assert status == 400
    assert "no scripted reply" in json.loads(raw)["error"]["message"]


def test_an_http_fault_carries_its_headers_and_an_openai_error_body(server: OpenAIServer) -> None:
    server.push(Fault.http(429, retry_after=7, message="slow down"))
    status, raw, headers = exchange(server, {"model": "m", "messages": [USER]})
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert json.loads(raw)["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": None,
    }


def test_a_wrong_key_is_a_401_when_the_server_has_one() -> None:
    with OpenAIServer(api_key="right") as server:
        server.push(Reply(text="never sent"))
        status, raw = post(server, {"model": "m", "messages": [USER]})
    assert status == 401
    assert "Incorrect API key" in json.loads(raw)["error"]["message"]
