"""Deleting from the SQLite store frees exactly what nothing kept refers to."""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from tierflow import CheckpointError
from tierflow import store as run_store
from tierflow.store import SqliteStore, blobs


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    count: int
    target: int


def step(state: State) -> dict[str, Any]:
    n = state.get("count", 0) + 1
    return {"messages": [AIMessage(f"reply {n} " + "z" * 200, id=f"m{n}")], "count": n}


def build(
    saver: BaseCheckpointSaver[Any],
    state: type[Any] = State,
    node: Callable[..., dict[str, Any]] = step,
) -> CompiledStateGraph[Any, None, Any, Any]:
    # `state` is State or DeltaState, `node` a step of that state.
    builder = StateGraph(state)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_conditional_edges(
        "step", lambda s: "step" if s["count"] < s["target"] else END, ["step", END]
    )
    return builder.compile(checkpointer=saver)


def config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 500}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with run_store.open_sqlite(tmp_path / "runs.db") as saver:
        yield saver


def references(conn: sqlite3.Connection) -> tuple[set[int], set[int]]:
    """(blobs stored, blobs referenced by a write or a channel value)."""
    stored = {i for (i,) in conn.execute("SELECT id FROM blobs")}
    used = {i for (i,) in conn.execute("SELECT blob FROM writes")}
    for (segments,) in conn.execute("SELECT segments FROM channel_values"):
        used.update(blobs.unpack_ids(segments))
    return stored, used


def test_pruning_keeps_the_latest_state_and_frees_the_rest(store: SqliteStore) -> None:
    graph = build(store)
    graph.invoke({"target": 60}, config("a"))
    graph.invoke({"target": 60}, config("b"))
    latest = graph.get_state(config("a"))
    size_before = store.conn.execute("SELECT count(*) FROM channel_values").fetchone()[0]

    assert store.keep(["a"], keep_last=1) == 61
    assert len(list(store.list(config("a")))) == 1
    assert graph.get_state(config("a")).values == latest.values
    assert len(list(store.list(config("b")))) == 62
    stored, used = references(store.conn)
    assert stored == used  # nothing dangling, nothing leaked
    assert store.conn.execute("SELECT count(*) FROM channel_values").fetchone()[0] < size_before
    # The pruned thread carries on from where it was.
    graph.invoke({"target": 70}, config("a"))
    assert [m.id for m in graph.get_state(config("a")).values["messages"]][-1] == "m70"


def test_a_copy_outlives_its_source_and_deleting_both_leaves_nothing(store: SqliteStore) -> None:
    graph = build(store)
    graph.invoke({"target": 30}, config("a"))
    store.copy_thread("a", "copy")
    store.delete_thread("a")
    assert [m.id for m in graph.get_state(config("copy")).values["messages"]] == [
        f"m{n}" for n in range(1, 31)
    ]
    store.delete_thread("copy")
    for table in ("blobs", "channel_values", "checkpoints", "tasks", "writes", "threads"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_deleting_a_run_keeps_the_other_runs_values(store: SqliteStore) -> None:
    graph = build(store)
    # As LangGraph's server does: the run id in `configurable` lands in each checkpoint's metadata.
    for run, target in (("1", 10), ("2", 20)):
        run_config: RunnableConfig = {"configurable": {"thread_id": "a", "run_id": f"run-{run}"}}
        graph.invoke({"target": target}, run_config | {"recursion_limit": 500})
    store.delete_for_runs(["run-1"])
    remaining = list(store.list(config("a")))
    assert {t.metadata.get("run_id") for t in remaining} == {"run-2"}
    assert [m.id for m in remaining[0].checkpoint["channel_values"]["messages"]] == [
        f"m{n}" for n in range(1, 21)
    ]
    stored, used = references(store.conn)
    assert stored == used


class DeltaState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], DeltaChannel(operator.add)]
    count: int
    target: int


def delta_step(state: DeltaState) -> dict[str, Any]:
    n = state.get("count", 0) + 1
    return {"messages": [AIMessage(f"reply {n}", id=f"m{n}")], "count": n}


def test_threads_of_delta_channel_graphs_are_not_pruned(store: SqliteStore) -> None:
    build(store, DeltaState, delta_step).invoke({"target": 5}, config("delta"))
    before = len(list(store.list(config("delta"))))
    with pytest.raises(CheckpointError, match="uses a DeltaChannel"):
        store.keep(["delta"], keep_last=1)
    assert len(list(store.list(config("delta")))) == before
