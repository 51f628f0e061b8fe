"""The scripted model's usage estimate is incremental, and its async path and latency.

A run re-sends its whole history on every call; the estimate measures each message
once (the graph passes the same message objects each time), so a run of n turns costs
O(n) measurements, not O(n²) — with exactly the numbers of the full computation."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import pickle
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from conftest import RecordingChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from tierflow import Scenario, ScriptedChatModel, Turn
from tierflow.models import scripted

TICK = {
    "type": "function",
    "function": {
        "name": "tick",
        "description": "Count one step.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
}
TURNS = 200


def reference_input_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any]) -> int:
    """The estimate as it was computed before: every message serialised on every call."""
    prompt_chars = len(json.dumps(list(tools))) + sum(
        len(str(m.text)) + len(json.dumps(list(m.tool_calls) if isinstance(m, AIMessage) else []))
        for m in messages
    )
    return max(1, prompt_chars // scripted.CHARS_PER_TOKEN)


def long_script(turns: int = TURNS) -> ScriptedChatModel:
    """`turns - 1` tool turns with arguments that JSON escapes, then an answer."""
    calls = tuple(
        Turn(text="Counting…" * (n % 3), calls=(("tick", {"n": n, "note": "café ☕" * (n % 4)}),))
        for n in range(turns - 1)
    )
    scenario = Scenario(match="count", turns=(*calls, Turn(text="counted")))
    return ScriptedChatModel(scenarios=(scenario,))


def run(
    model: ScriptedChatModel, turns: int = TURNS, on_call: Callable[[], None] | None = None
) -> list[tuple[int, int]]:
    """A ReAct run as a graph drives it: the same history objects on every call, a new
    system message each time. Returns (estimated, reference) input tokens per call."""
    bound = model.bind_tools([TICK])
    history: list[BaseMessage] = [HumanMessage("count to the end")]
    estimates = []
    for n in range(turns):
        prompt = [SystemMessage("You count."), *history]
        response = bound.invoke(prompt)
        assert isinstance(response, AIMessage) and response.usage_metadata is not None
        reference = reference_input_tokens(prompt, [convert_to_openai_tool(TICK)])
        estimates.append((response.usage_metadata["input_tokens"], reference))
        if on_call is not None:
            on_call()
        history.append(response)
        if response.tool_calls:
            history.append(ToolMessage(f"tick {n}" * n, tool_call_id=response.tool_calls[0]["id"]))
    return estimates


def test_the_estimate_over_a_long_run_equals_the_full_computation() -> None:
    estimates = run(long_script())
    assert len(estimates) == TURNS
    assert [ours for ours, _ in estimates] == [reference for _, reference in estimates]
    assert estimates[-1][0] > 10 * estimates[0][0]  # the history did grow


def test_measurements_per_call_do_not_grow_with_the_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured = 0
    measure = scripted.message_chars

    def counting(message: BaseMessage) -> int:
        nonlocal measured
        measured += 1
        return measure(message)

    monkeypatch.setattr(scripted, "message_chars", counting)
    per_call: list[int] = []

    def on_call() -> None:
        nonlocal measured
        per_call.append(measured)
        measured = 0

    run(long_script(), on_call=on_call)
    # The first call: the system message and the request. Every later one: its new
    # system message, the previous answer and its tool result — whatever the history.
    assert per_call == [2] + [3] * (TURNS - 1)


def test_a_message_whose_content_is_replaced_is_measured_again() -> None:
    model = ScriptedChatModel(scenarios=(Scenario(match="", turns=(Turn(text="ok"),)),))
    request = HumanMessage("count")
    first = model.invoke([request]).usage_metadata
    request.content = "count " + "and count again " * 50
    second = model.invoke([request]).usage_metadata
    assert first is not None and second is not None
    assert second["input_tokens"] == reference_input_tokens([request], [])
    assert second["input_tokens"] > first["input_tokens"]


def test_entries_go_with_their_messages() -> None:
    model = long_script(turns=20)
    run(model, turns=20)
    gc.collect()
    assert len(model._measured) == 0


def test_a_copy_of_the_model_starts_with_no_entries() -> None:
    model = long_script(turns=5)
    history = [HumanMessage("count")]
    model.invoke(history)
    assert len(model._measured) == 1
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert len(clone._measured) == 0
        assert clone.invoke(history).usage_metadata == model.invoke(history).usage_metadata


def test_an_async_call_answers_what_a_sync_call_does_and_the_subclass_sees_it() -> None:
    turns = (Turn(calls=(("tick", {"n": 1}),)), Turn(text="done"))
    model = RecordingChatModel(scenarios=(Scenario(match="", turns=turns),))
    prompt: list[BaseMessage] = [HumanMessage("count")]
    sync = model.invoke(prompt)
    in_async = asyncio.run(model.ainvoke(prompt))
    assert (in_async.content, in_async.tool_calls, in_async.usage_metadata) == (
        sync.content,
        sync.tool_calls,
        sync.usage_metadata,
    )
    assert len(model.inputs) == 2  # `_agenerate` goes through the subclass's `_generate`


def test_an_async_call_waits_its_latency_and_a_sync_call_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    def fake_sleep(delay: float) -> Awaitable[None]:
        waits.append(delay)
        return real_sleep(0)

    def no_blocking_sleep(delay: float) -> None:
        raise AssertionError(f"a sync call slept {delay} s")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", no_blocking_sleep)
    model = ScriptedChatModel(
        scenarios=(Scenario(match="", turns=(Turn(text="ok"),)),), latency_s=0.25
    )
    assert asyncio.run(model.ainvoke("count")).content == "ok"
    assert waits.count(0.25) == 1
    assert model.invoke("count").content == "ok"
    assert waits.count(0.25) == 1


def test_a_negative_latency_is_refused() -> None:
    with pytest.raises(ValidationError, match="latency_s"):
        ScriptedChatModel(scenarios=(), latency_s=-1.0)
