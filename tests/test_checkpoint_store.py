"""tierflow's SQLite saver reads back exactly what LangGraph wrote, and stores it once."""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeAlias

import pytest
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot
from typing_extensions import TypedDict

from tierflow import store as run_store
from tierflow.store import SqliteStore, blobs, values

SERDE = JsonPlusSerializer()


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[dict[str, Any]], operator.add]
    summary: str
    count: int
    target: int


def step(state: State) -> dict[str, Any]:
    """Appends most steps; every fifth replaces a message, every seventh removes one."""
    n = state.get("count", 0) + 1
    messages: list[BaseMessage] = [AIMessage(content=f"reply {n} " + "x" * 300, id=f"m{n}")]
    if n % 5 == 0:
        messages.append(AIMessage(content=f"edited at {n}", id=f"m{n - 2}"))
    if n % 7 == 0:
        messages.append(RemoveMessage(id=f"m{n - 3}"))
    return {
        "messages": messages,
        "notes": [{"step": n, "even": n % 2 == 0}],
        "summary": f"{n} steps; " + "long summary text " * (n % 3) * 10,
        "count": n,
    }


def append(state: State) -> dict[str, Any]:
    n = state.get("count", 0) + 1
    return {"messages": [AIMessage(content=f"reply {n} " + "x" * 300, id=f"m{n}")], "count": n}


Graph: TypeAlias = CompiledStateGraph[State, None, State, State]


class Node(Protocol):
    # LangGraph matches a node by its parameter's name, `state`: a `Callable` has none.
    def __call__(self, state: State) -> dict[str, Any]: ...


def build(saver: BaseCheckpointSaver[Any], node: Node = step) -> Graph:
    builder = StateGraph(State)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_conditional_edges(
        "step", lambda s: "step" if s["count"] < s["target"] else END, ["step", END]
    )
    return builder.compile(checkpointer=saver)


def config(thread: str = "t") -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 1000}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with run_store.open_sqlite(tmp_path / "runs.db") as saver:
        yield saver


def history(graph: Graph, thread: str = "t") -> list[tuple[Any, ...]]:
    """Every checkpoint's values, metadata and pending writes, newest first, serialised
    (so message ids and types count, not just ==)."""
    return [
        (
            SERDE.dumps_typed(snapshot.values),
            snapshot.metadata["step"] if snapshot.metadata else None,
            SERDE.dumps_typed([(t.name, t.result) for t in snapshot.tasks]),
            snapshot.next,
        )
        for snapshot in graph.get_state_history(config(thread))
    ]


def test_every_checkpoint_reads_back_what_the_in_memory_saver_holds(store: SqliteStore) -> None:
    # Appends, in-place replacements and removals of messages, a growing list of dicts,
    # long and short strings, ints: the same run on both savers, compared checkpoint by
    # checkpoint, newest to oldest.
    reference, ours = build(InMemorySaver()), build(store)
    for graph in (reference, ours):
        graph.invoke({"messages": [HumanMessage("go", id="h1")], "target": 12}, config())
        graph.invoke({"messages": [HumanMessage("more", id="h2")], "target": 30}, config())
    expected = history(reference)
    assert len(expected) > 30
    assert history(ours) == expected
    # And one by one, each through get_tuple, not only through list.
    for snapshot in ours.get_state_history(config()):
        again = ours.get_state(snapshot.config)
        assert SERDE.dumps_typed(again.values) == SERDE.dumps_typed(snapshot.values)


def test_reads_from_a_fresh_connection_and_asynchronously_agree(
    store: SqliteStore, tmp_path: Path
) -> None:
    build(store).invoke({"messages": [HumanMessage("go", id="h1")], "target": 20}, config())
    expected = history(build(store))
    with run_store.open(tmp_path / "runs.db") as other:
        assert history(build(other)) == expected

        async def latest() -> StateSnapshot:
            return await build(other).aget_state(config())

        assert SERDE.dumps_typed(asyncio.run(latest()).values) == expected[0][0]


def message_blobs(path: Path) -> list[list[AnyMessage]]:
    """Every stored blob that holds messages, decoded."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, zlib, data FROM blobs").fetchall()
    found = []
    for type_, packed, data in rows:
        value = SERDE.loads_typed((type_, zlib.decompress(data) if packed else data))
        if isinstance(value, list) and value and isinstance(value[0], AIMessage):
            found.append(value)
    return found


def test_each_message_is_stored_once_however_long_the_thread(
    store: SqliteStore, tmp_path: Path
) -> None:
    graph = build(store, append)
    graph.invoke({"messages": [HumanMessage("go", id="h1")], "target": 40}, config())
    # A new process: nothing cached. Loading the thread is enough to keep appending deltas.
    with run_store.open(tmp_path / "runs.db") as later:
        build(later, append).invoke({"target": 80}, config())
    stored = [str(m.id) for blob in message_blobs(tmp_path / "runs.db") for m in blob]
    # Each reply once: the node's write and the `messages` version share its blob.
    assert sorted(stored) == sorted(f"m{n}" for n in range(1, 81))


def test_checkpoint_rows_do_not_grow_with_the_thread(store: SqliteStore, tmp_path: Path) -> None:
    build(store).invoke({"messages": [HumanMessage("go", id="h1")], "target": 150}, config())
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        rows = [n for (n,) in conn.execute("SELECT length(payload) FROM checkpoints ORDER BY id")]
        versions = conn.execute(
            "SELECT segments FROM channel_values WHERE channel = 'messages'"
        ).fetchall()
    assert max(rows[-20:]) <= max(rows[10:30]) + 8  # a few bytes for bigger counters
    # A message version points at what changed (an edit: the few items after it), never
    # at the whole history again.
    assert len(versions) > 140
    assert max(len(blobs.unpack_ids(segments)) for (segments,) in versions) <= 4


def test_a_fork_in_one_thread_keeps_both_branches_values(store: SqliteStore) -> None:
    graph = build(store)
    graph.invoke({"messages": [HumanMessage("go", id="h1")], "target": 6}, config())
    early = next(s for s in graph.get_state_history(config()) if s.values.get("count") == 3)
    forked = graph.update_state(early.config, {"messages": [AIMessage("other path", id="f1")]})
    graph.invoke(None, forked | {"recursion_limit": 100})
    branch = graph.get_state(config())
    assert [m.id for m in branch.values["messages"]][-4:] == ["f1", "m4", "m5", "m6"]
    # The first branch's final checkpoint still reads as it was.
    finals = [s for s in graph.get_state_history(config()) if s.values.get("count") == 6]
    first = [s for s in finals if all(m.id != "f1" for m in s.values["messages"])]
    assert len(first) == 1
    assert [m.id for m in first[0].values["messages"]][-4:] == ["m3", "m4", "m5", "m6"]


def test_a_base_deleted_by_another_process_is_not_extended(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    one = AIMessage("one", id="1")
    two = AIMessage("two", id="2")
    with run_store.open(path) as writer, run_store.open(path) as other:
        cfg: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        first = empty_checkpoint(
            "1", {"messages": [one]}, {"messages": writer.get_next_version(None, None)}
        )
        saved = writer.put(cfg, first, {"step": 0}, dict(first["channel_versions"]))
        other.delete_thread("t")  # the version `writer` remembers is gone
        second = empty_checkpoint(
            "2", {"messages": [one, two]}, {"messages": writer.get_next_version("1", None)}
        )
        writer.put(saved, second, {"step": 1}, dict(second["channel_versions"]))
        found = other.get_tuple(cfg)
    assert found is not None
    assert [m.id for m in found.checkpoint["channel_values"]["messages"]] == ["1", "2"]


def empty_checkpoint(
    number: str, values: dict[str, Any], versions: dict[str, str | int | float]
) -> Checkpoint:
    return {
        "v": 4,
        "id": f"1f000000-0000-6000-8000-00000000000{number}",
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
        "updated_channels": None,
    }


def test_messages_from_parallel_writers_are_each_stored_once(
    store: SqliteStore, tmp_path: Path
) -> None:
    # Two nodes append in the same superstep: the new `messages` version is cut along
    # their two writes, so it shares both blobs instead of storing a third copy.
    def writer(name: str) -> Node:
        def node(state: State) -> dict[str, Any]:
            turn = len(state["messages"])
            return {"messages": [AIMessage(f"{name} {turn} " + "y" * 200, id=f"{name}{turn}")]}

        return node

    builder = StateGraph(State)
    builder.add_node("a", writer("a"))
    builder.add_node("b", writer("b"))
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    graph = builder.compile(checkpointer=store)
    for turn in range(5):
        graph.invoke({"messages": [HumanMessage(f"turn {turn}", id=f"h{turn}")]}, config())
    stored = [str(m.id) for blob in message_blobs(tmp_path / "runs.db") for m in blob]
    assert len(graph.get_state(config()).values["messages"]) == 15
    assert sorted(stored) == sorted(set(stored))
    assert len(stored) == 10


def test_a_new_version_is_cut_along_the_writes_that_made_it() -> None:
    # Unit level, deterministic: the tail [m1, m2, m3, m4] after a base of [m0], with the
    # parent's writes [[m1, m2], [m3]], is stored as those two writes' own bytes and m4.
    m = [AIMessage(f"message {n}", id=f"m{n}") for n in range(5)]
    base = values.Base(version="1", row=1, items=[m[0]])
    planned = values.plan(SERDE, "messages", "2", list(m), base=base, writes=[[m[1], m[2]], [m[3]]])
    assert (planned.kind, planned.prefix, planned.base) == (values.LIST, 1, base)
    expected = [[m[1], m[2]], [m[3]], [m[4]]]
    assert [s.hash for s in planned.segments] == [blobs.encode(SERDE, p).hash for p in expected]
    # A write that is not what the tail holds (another object) is not used.
    other = values.plan(SERDE, "messages", "2", list(m), base=base, writes=[[AIMessage("x")]])
    assert [s.hash for s in other.segments] == [blobs.encode(SERDE, [x]).hash for x in m[1:]]
