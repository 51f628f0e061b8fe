"""Cached input modelled offline as OpenAI bills it: the policy, the prefix cache, the
scripted model, and the local server over real HTTP through langchain-openai — down to
tierflow's recorded usage and its price, and the `prompt_cache_key` sent per agent/tier."""

from __future__ import annotations

import copy
import json
import pickle
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver

from tierflow import Agent, RulesRouter, Scenario, ScriptedChatModel, Tier, Turn, tool
from tierflow.models import OpenAIModel, Price, TokenUsage, usage_from_metadata
from tierflow.models.cache import OPENAI_CACHE, CachePolicy, PromptCache, segment
from tierflow.models.resolve import prompt_cache_key, resolve_model
from tierflow.models.scripted import CHARS_PER_TOKEN, message_chars
from tierflow.testing import OpenAIServer, Reply, Usage

FAST = Price(input=2.00, cached_input=0.50, output=8.00)
# Long, stable instructions: the prefix every turn re-sends (about 1,500 tokens).
INSTRUCTIONS = "You answer questions about orders. Policy clause. " * 120
REQUEST = "Where is order 1007?"
TICK = {
    "type": "function",
    "function": {
        "name": "order_status",
        "description": "The shipping status of an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
    },
}


# --- the policy and the prefix cache ---------------------------------------------------


@pytest.mark.parametrize(
    ("shared", "prompt", "cached"),
    [
        (0, 5000, 0),
        (1023, 5000, 0),  # a shared prefix under the minimum is not a hit
        (1024, 1023, 0),  # nor is any part of a prompt under the minimum
        (1024, 1024, 1024),
        (1151, 5000, 1024),  # rounded down to 128-token steps
        (1152, 5000, 1152),
        (3000, 2000, 1920),  # never more than the prompt
    ],
)
def test_openai_counts_cached_tokens_from_1024_in_128_token_steps(
    shared: int, prompt: int, cached: int
) -> None:
    assert OPENAI_CACHE.cached_tokens(shared, prompt) == cached


def test_a_provider_with_another_rule_is_a_policy() -> None:
    every_token = CachePolicy(minimum_tokens=0, step_tokens=1)
    assert every_token.cached_tokens(37, 100) == 37
    assert CachePolicy(minimum_tokens=2048, step_tokens=256).cached_tokens(2500, 3000) == 2304


def parts(*texts: str) -> list[Any]:
    return [segment(t) for t in texts]


def test_the_longest_shared_prefix_under_the_same_key_is_cached() -> None:
    cache = PromptCache()
    policy = CachePolicy(minimum_tokens=0, step_tokens=1)
    a, b, c, d = "a" * 400, "b" * 400, "c" * 400, "d" * 400
    assert cache.cached_tokens(policy, "k", parts(a, b), 200) == 0  # cold
    assert cache.cached_tokens(policy, "k", parts(a, b, c), 300) == 200
    assert cache.cached_tokens(policy, "k", parts(a, d), 200) == 100  # the prefix up to `a`
    assert cache.cached_tokens(policy, "other", parts(a, b, c), 300) == 0  # keys don't share
    assert cache.cached_tokens(policy, "k", parts(d, a, b), 300) == 0  # a prefix, not a part


def test_a_copy_of_the_cache_starts_cold() -> None:
    cache = PromptCache()
    policy = CachePolicy(minimum_tokens=0, step_tokens=1)
    cache.shared_chars("k", parts("x" * 40))
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert clone.cached_tokens(policy, "k", parts("x" * 40), 10) == 0
    assert cache.cached_tokens(policy, "k", parts("x" * 40), 10) == 10


def test_the_cache_forgets_the_oldest_prefixes_beyond_its_capacity() -> None:
    cache = PromptCache(capacity=2)
    for text in ("a", "b", "c"):
        cache.shared_chars("k", parts(text))
    assert cache.shared_chars("k", parts("c")) == 1
    assert cache.shared_chars("k", parts("a")) == 0  # the oldest of three was forgotten


# --- the scripted model ---------------------------------------------------------------


def scripted(**settings: Any) -> ScriptedChatModel:
    turns = (Turn(calls=(("order_status", {"order_id": 1007}),)), Turn(text="It shipped."))
    return ScriptedChatModel(scenarios=(Scenario(match="order", turns=turns),), **settings)


def react_turns(model: ScriptedChatModel, **kwargs: Any) -> list[AIMessage]:
    """Two calls of a ReAct loop: the same instructions and request, then the history."""
    bound = model.bind_tools([TICK], **kwargs)
    history: list[BaseMessage] = [HumanMessage(REQUEST)]
    answers: list[AIMessage] = []
    for _ in range(2):
        answer = bound.invoke([SystemMessage(INSTRUCTIONS), *history])
        assert isinstance(answer, AIMessage)
        answers.append(answer)
        history.append(answer)
        for call in answer.tool_calls:
            history.append(ToolMessage("shipped", tool_call_id=str(call["id"])))
    return answers


def cached_of(message: AIMessage) -> int:
    return usage_from_metadata(message.usage_metadata)["cached_tokens"]


def test_the_scripted_model_bills_the_re_sent_prefix_as_cached_and_says_it_is_modelled() -> None:
    first, second = react_turns(scripted())
    prefix_chars = (
        len(json.dumps([convert_to_openai_tool(TICK)]))
        + message_chars(SystemMessage(INSTRUCTIONS))
        + message_chars(HumanMessage(REQUEST))
    )
    assert prefix_chars // CHARS_PER_TOKEN >= 1024
    assert cached_of(first) == 0
    assert cached_of(second) == prefix_chars // CHARS_PER_TOKEN // 128 * 128
    assert second.response_metadata["cache_source"] == "modelled"
    assert second.response_metadata["usage_source"] == "estimated"


def test_the_same_prompt_again_is_cached_up_to_its_last_step() -> None:
    model = scripted()
    prompt = [SystemMessage(INSTRUCTIONS), HumanMessage(REQUEST)]
    model.invoke(prompt)
    again = model.invoke(prompt)
    usage = usage_from_metadata(again.usage_metadata)
    assert usage["cached_tokens"] == usage["input_tokens"] // 128 * 128 > 0


def test_another_prompt_cache_key_starts_cold() -> None:
    model = scripted()
    react_turns(model, prompt_cache_key="desk/fast")
    first, second = react_turns(model, prompt_cache_key="desk/reasoning")
    assert cached_of(first) == 0 < cached_of(second)


def test_without_a_cache_policy_nothing_is_cached() -> None:
    first, second = react_turns(scripted(prompt_cache=None))
    assert cached_of(first) == cached_of(second) == 0
    assert "cache_source" not in second.response_metadata


def test_declared_usage_keeps_its_declared_cached_tokens() -> None:
    declared = TokenUsage(input_tokens=3000, cached_tokens=7, output_tokens=10, reasoning_tokens=0)
    turns = (Turn(text="a", usage=declared), Turn(text="b", usage=declared))
    model = ScriptedChatModel(scenarios=(Scenario(match="order", turns=turns),))
    prompt = [SystemMessage(INSTRUCTIONS), HumanMessage(REQUEST)]
    model.invoke(prompt)
    again = model.invoke(prompt)
    assert cached_of(again) == 7
    assert again.response_metadata["usage_source"] == "declared"
    assert "cache_source" not in again.response_metadata


# --- the local server, raw HTTP ---------------------------------------------------------


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(prompt_cache=OPENAI_CACHE) as running:
        running.script(
            "order 1007",
            Reply(calls=(("order_status", {"order_id": 1007}),)),
            Reply(text="Order 1007 has shipped."),
        )
        yield running


def post(server: OpenAIServer, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        payload: dict[str, Any] = json.loads(response.read())
    return payload


def wire_turns(server: OpenAIServer, **extra: Any) -> list[dict[str, Any]]:
    """The two requests of a ReAct loop, as a client sends them; their `usage`."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": REQUEST},
    ]
    usages = []
    for _ in range(2):
        body = post(server, {"model": "gpt-4.1", "messages": messages, "tools": [TICK], **extra})
        usages.append(body["usage"])
        message = body["choices"][0]["message"]
        messages = [*messages, message]
        for call in message.get("tool_calls") or []:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": "shipped"})
    return usages


def test_the_server_reports_the_re_sent_prefix_as_cached_tokens(server: OpenAIServer) -> None:
    first, second = wire_turns(server)
    prefix = len(json.dumps([TICK])) + sum(
        len(json.dumps(m))
        for m in ({"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": REQUEST})
    )
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"]["cached_tokens"] == prefix // 4 // 128 * 128 > 0
    assert [r.usage.cached_tokens for r in server.completions() if r.usage] == [
        0,
        prefix // 4 // 128 * 128,
    ]


def test_the_server_keeps_one_cache_per_model_and_prompt_cache_key(
    server: OpenAIServer,
) -> None:
    wire_turns(server, prompt_cache_key="a")
    first, _ = wire_turns(server, prompt_cache_key="b")
    assert first["prompt_tokens_details"]["cached_tokens"] == 0


def test_a_server_without_a_cache_policy_caches_nothing() -> None:
    with OpenAIServer(prompt_cache=None) as running:
        running.script(
            "order 1007",
            Reply(calls=(("order_status", {"order_id": 1}),)),
            Reply(),
        )
        usages = wire_turns(running)
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in usages] == [0, 0]


def test_declared_usage_is_reported_as_declared(server: OpenAIServer) -> None:
    server.push(Reply(text="x", usage=Usage(prompt_tokens=2000, completion_tokens=5)))
    server.push(Reply(text="x", usage=Usage(prompt_tokens=2000, completion_tokens=5)))
    body = {"model": "gpt-4.1", "messages": [{"role": "system", "content": INSTRUCTIONS}]}
    post(server, body)
    assert post(server, body)["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


# --- through langchain-openai over HTTP -------------------------------------------------


def streamed(chat: Runnable[LanguageModelInput, AIMessage], prompt: list[BaseMessage]) -> AIMessage:
    chunks = [c for c in chat.stream(prompt) if isinstance(c, AIMessageChunk)]
    answer = chunks[0]
    for chunk in chunks[1:]:
        answer += chunk
    return answer


@pytest.mark.parametrize("streaming", [False, True])
def test_cached_tokens_reach_tierflow_usage_and_are_priced_at_the_cached_price(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    chat = resolve_model(OpenAIModel(model="gpt-4.1", base_url=server.url)).bind_tools([TICK])
    history: list[BaseMessage] = [SystemMessage(INSTRUCTIONS), HumanMessage("order 1007?")]
    usages: list[TokenUsage] = []
    for _ in range(2):
        answer = streamed(chat, history) if streaming else chat.invoke(history)
        usages.append(usage_from_metadata(answer.usage_metadata))
        history.append(answer)
        for call in answer.tool_calls:
            history.append(ToolMessage("shipped", tool_call_id=str(call["id"])))
    reported = [r.usage for r in server.completions()]
    assert [u["cached_tokens"] for u in usages] == [r.cached_tokens for r in reported if r]
    second = usages[1]
    assert second["cached_tokens"] >= 1024
    by_hand = (
        (second["input_tokens"] - second["cached_tokens"]) * 2.00
        + second["cached_tokens"] * 0.50
        + second["output_tokens"] * 8.00
    ) / 1_000_000
    assert FAST.cost(second) == pytest.approx(by_hand)
    assert FAST.cost(second) < FAST.cost({**second, "cached_tokens": 0})


# --- prompt_cache_key -----------------------------------------------------------------


def test_a_prompt_cache_key_per_agent_and_tier_is_sent_on_every_turn(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    key = prompt_cache_key("support_desk", "fast")
    config = OpenAIModel(model="gpt-4.1", base_url=server.url)
    chat = resolve_model(config, cache_key=key).bind_tools([TICK])
    history: list[BaseMessage] = [SystemMessage(INSTRUCTIONS), HumanMessage("order 1007?")]
    for _ in range(2):
        answer = chat.invoke(history)
        assert isinstance(answer, AIMessage)
        history.append(answer)
        for call in answer.tool_calls:
            history.append(ToolMessage("shipped", tool_call_id=str(call["id"])))
    first, second = server.completions()
    assert first.prompt_cache_key == second.prompt_cache_key == "support_desk/fast"
    assert second.usage is not None and second.usage.cached_tokens > 0


def test_the_spec_key_wins_and_the_key_can_be_turned_off(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    prompt = [HumanMessage("order 1007?")]
    fixed = OpenAIModel(model="gpt-4.1", base_url=server.url, prompt_cache_key="tenant-a")
    resolve_model(fixed, cache_key="desk/fast").invoke(prompt)
    off = OpenAIModel(model="gpt-4.1", base_url=server.url, send_prompt_cache_key=False)
    resolve_model(off, cache_key="desk/fast").invoke(prompt)
    resolve_model(OpenAIModel(model="gpt-4.1", base_url=server.url)).invoke(prompt)
    sent = [r.prompt_cache_key for r in server.completions()]
    assert sent == ["tenant-a", None, None]
    assert all("prompt_cache_key" not in r.body for r in server.completions()[1:])


def test_derived_keys_are_short_and_stable() -> None:
    assert prompt_cache_key("desk", "fast") == "desk/fast"
    long = prompt_cache_key("a" * 80, "reasoning")
    assert len(long) == 64 and long == prompt_cache_key("a" * 80, "reasoning")
    assert long != prompt_cache_key("a" * 80, "fast")


# --- a tierflow run over HTTP ---------------------------------------------------------


@tool
def order_status(order_id: int) -> str:
    """The shipping status of an order."""
    return {1007: "shipped"}.get(order_id, "unknown")


def test_a_run_records_the_cached_tokens_the_server_reported_and_prices_them(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    agent = Agent(
        name="orders",
        instructions=INSTRUCTIONS,
        tiers=(
            Tier(name="fast", model=OpenAIModel(model="gpt-4.1", base_url=server.url), price=FAST),
            Tier(name="reasoning", model=OpenAIModel(model="o4", base_url=server.url), price=FAST),
        ),
        router=RulesRouter(default="fast"),
        tools=(order_status,),
    )
    graph = agent.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    state = graph.invoke({"messages": [HumanMessage("Where is order 1007?")]}, config)
    assert state["status"] == "done"
    reported = [r.usage for r in server.completions()]
    calls = state["calls"]
    assert [c["usage"]["cached_tokens"] for c in calls] == [u.cached_tokens for u in reported if u]
    assert calls[0]["usage"]["cached_tokens"] == 0 < calls[1]["usage"]["cached_tokens"]
    # The compiled agent sends its own key (agent/tier) on every call of the tier.
    assert {r.prompt_cache_key for r in server.completions()} == {"orders/fast"}
    for call in calls:
        usage = call["usage"]
        by_hand = (
            (usage["input_tokens"] - usage["cached_tokens"]) * 2.00
            + usage["cached_tokens"] * 0.50
            + usage["output_tokens"] * 8.00
        ) / 1_000_000
        assert call["cost_usd"] == pytest.approx(by_hand)
