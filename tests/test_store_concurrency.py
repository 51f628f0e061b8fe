"""Several processes writing different threads to one SQLite file at once: no
"database is locked", no thread corrupted."""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from tierflow import store as run_store
from tierflow.store import RunsTable

pytestmark = pytest.mark.slow  # four processes

PROCESSES = 4
STEPS = 200


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    target: int


def text(thread: str, n: int) -> str:
    return f"{thread} says {n}: " + "lorem ipsum " * 30


def talk(state: State, config: RunnableConfig) -> dict[str, Any]:
    thread = config["configurable"]["thread_id"]
    n = len(state.get("messages", []))
    return {"messages": [AIMessage(text(thread, n), id=f"{thread}-{n}")]}


def graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[State, None, State, State]:
    builder = StateGraph(State)
    builder.add_node("talk", talk)
    builder.add_edge(START, "talk")
    builder.add_conditional_edges(
        "talk", lambda s: "talk" if len(s["messages"]) < s["target"] else END, ["talk", END]
    )
    return builder.compile(checkpointer=saver)


def worker(path: str, thread: str, start: Barrier, errors: Queue[str]) -> None:
    """One process: its own thread, every step checkpointed, its runs row kept."""
    try:
        runs = RunsTable(path)
        start.wait()  # everyone opens the file and writes at the same moment
        runs.start(thread, agent="talker", source="-", request="talk")
        with run_store.open(path) as saver:
            config: RunnableConfig = {
                "configurable": {"thread_id": thread},
                "recursion_limit": STEPS + 10,
            }
            graph(saver).invoke({"target": STEPS}, config, durability="sync")
        runs.update(thread, status="done")
    except BaseException:
        errors.put(f"{thread}: {traceback.format_exc()}")
        raise


def test_four_processes_write_four_threads_to_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    errors = context.Queue()
    threads = [f"thread-{n}" for n in range(PROCESSES)]
    processes = [
        context.Process(target=worker, args=(path, thread, start, errors)) for thread in threads
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    with run_store.open(path) as saver:
        for thread in threads:
            history = list(saver.list({"configurable": {"thread_id": thread}}))
            # The input checkpoint, the start, and one per message.
            assert len(history) == STEPS + 2
            messages = history[0].checkpoint["channel_values"]["messages"]
            assert [m.id for m in messages] == [f"{thread}-{n}" for n in range(STEPS)]
            assert [m.content for m in messages] == [text(thread, n) for n in range(STEPS)]
            # Every checkpoint along the way reads back whole, too.
            assert [len(t.checkpoint["channel_values"].get("messages", [])) for t in history] == [
                *range(STEPS, -1, -1),
                0,
            ]
    rows = {row["thread"]: row["status"] for row in RunsTable(path).all()}
    assert rows == dict.fromkeys(threads, "done")
