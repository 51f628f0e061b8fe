"""A tool's retries reach the run's "custom" stream, as a model's do: `tierflow run
--stream` shows them, sync and async, from whichever thread the tool ran in."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage
from rich.console import Console

from tierflow import Turn, tool
from tierflow.cli.stream import StreamPrinter
from tierflow.errors import TransientError
from tierflow.foundation.retry import RetryPolicy

REQUEST = {"messages": [HumanMessage("look it up")]}
RETRY = RetryPolicy(max_retries=3, backoff_s=0.0, jitter=0.0)


def flaky_tool(failures: int) -> Any:
    left = [failures]

    @tool(retry=RETRY)
    def look_up(order_id: int) -> str:
        """Look an order up."""
        if left[0]:
            left[0] -= 1
            raise TransientError("backend busy")
        return f"order {order_id}: shipped"

    return look_up


def streamed(graph: Any, config: Any, *, use_async: bool) -> list[dict[str, Any]]:
    async def collect() -> list[Any]:
        return [c async for c in graph.astream(REQUEST, config, stream_mode="custom")]

    chunks = (
        asyncio.run(collect())
        if use_async
        else list(graph.stream(REQUEST, config, stream_mode="custom"))
    )
    return [c for c in chunks if isinstance(c, dict) and c.get("event") == "retry"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_each_retry_of_a_tool_is_streamed_with_the_tool_named(
    scripted_agent: Callable[..., Scripted], use_async: bool
) -> None:
    turns = [Turn(calls=(("look_up", {"order_id": 7}),)), Turn(text="Shipped.")]
    graph = scripted_agent(turns, tools=(flaky_tool(2),)).graph()

    events = streamed(graph, thread(f"retry-{use_async}"), use_async=use_async)

    assert [(e["node"], e["tool"], e["retry"], e["max_retries"]) for e in events] == [
        ("act", "look_up", 1, 3),
        ("act", "look_up", 2, 3),
    ]
    assert all("TransientError: backend busy" in e["reason"] for e in events)


def test_a_tool_that_succeeds_at_once_streams_no_retry(
    scripted_agent: Callable[..., Scripted],
) -> None:
    turns = [Turn(calls=(("look_up", {"order_id": 7}),)), Turn(text="Shipped.")]
    graph = scripted_agent(turns, tools=(flaky_tool(0),)).graph()

    assert streamed(graph, thread("no-retry"), use_async=False) == []


def test_the_cli_prints_a_tools_retry_with_its_name() -> None:
    buffer = io.StringIO()
    printer = StreamPrinter(Console(file=buffer, width=120, color_system=None))
    printer.on_stream(
        "custom",
        {
            "event": "retry",
            "node": "act",
            "tool": "look_up",
            "retry": 1,
            "max_retries": 3,
            "delay_s": 0.25,
            "retry_after_s": None,
            "reason": "TransientError: backend busy",
        },
    )
    assert "retry" in buffer.getvalue()
    assert "look_up 1/3 in 0.25s" in buffer.getvalue()
