"""Checkpoint storage benchmark: tierflow's SQLite saver beside LangGraph's SqliteSaver.

One graph for both: a `messages` state with `add_messages`, and one node that appends a
400-byte message per step until the thread has `target` messages. The thread grows to
each milestone in turn (a new invoke continues it), so it is one long thread, as a long
agent run would be. Measured per saver:

- file size at each milestone (database plus WAL, after closing), and its ratio to the
  raw payload (steps x 400 bytes of message text);
- write time per step: the saver's `put_writes` + `put` of one step, replayed alone
  (`replay`), median of the 20 steps ending at step 1,000 and the last milestone (of
  steps 1-10 for step 10);
- resume: open the file, compile, and run one more step (first new step done);
  load: `get_tuple` of the latest checkpoint; history: `list` of every checkpoint.

Run: `.venv/bin/python bench/checkpoints.py [--steps 100,1000,2000,5000] [--baseline-max 2000]`.
LangGraph's saver stores the whole state per step (quadratic); `--baseline-max` stops it
early so its file stays a few GB at most.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from tierflow import store as run_store

MESSAGE_BYTES = 400
WORDS = [
    "order",
    "refund",
    "shipping",
    "customer",
    "parcel",
    "invoice",
    "delivery",
    "address",
    "return",
    "policy",
    "warehouse",
    "tracking",
    "damaged",
    "replacement",
    "account",
    "payment",
    "card",
    "discount",
    "weekend",
    "courier",
    "receipt",
]


class State(TypedDict, total=False):  # a run starts with `target` alone
    messages: Annotated[list[AnyMessage], add_messages]
    target: int


def text(seed: int) -> str:
    """400 bytes of text-like content (words, not one repeated character)."""
    rng = random.Random(seed)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < MESSAGE_BYTES:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:MESSAGE_BYTES]


def talk(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(content=text(len(state["messages"])))]}


def more(state: State) -> str:
    return "talk" if len(state["messages"]) < state["target"] else END


def graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[State, None, State, State]:
    builder = StateGraph(State)
    builder.add_node("talk", talk)
    builder.add_edge(START, "talk")
    builder.add_conditional_edges("talk", more, ["talk", END])
    return builder.compile(checkpointer=saver)


Opener = Callable[[Path], AbstractContextManager[BaseCheckpointSaver[Any]]]


@contextmanager
def open_langgraph(path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    with SqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


@contextmanager
def open_tierflow(path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    with run_store.open(path) as saver:
        yield saver


Call = tuple[str, tuple[Any, ...]]


def recorded(saver: BaseCheckpointSaver[Any], calls: list[Call]) -> None:
    """Append every write the saver receives to `calls`, in order, and pass it on."""
    put, put_writes = saver.put, saver.put_writes

    def record_put(
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        calls.append(("put", (config, checkpoint, metadata, new_versions)))
        return put(config, checkpoint, metadata, new_versions)

    def record_put_writes(
        config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        calls.append(("put_writes", (config, writes, task_id, task_path)))
        put_writes(config, writes, task_id, task_path)

    # On this saver only, not its class: mypy refuses any assignment to a method.
    saver.put = record_put  # type: ignore[method-assign]
    saver.put_writes = record_put_writes  # type: ignore[method-assign]


def replay(saver: BaseCheckpointSaver[Any], calls: list[Call]) -> dict[int, float]:
    """Make the same writes again, one at a time, timing each step: the writes of a
    step's tasks plus its checkpoint, keyed by the number of messages it holds.

    In the live run LangGraph saves in a background thread while the main thread
    merges messages (O(n) per step, LangGraph's own cost); replaying alone measures
    the saver's cost and nothing else."""
    spent: dict[int, float] = {}
    pending = 0.0
    for kind, args in calls:
        start = time.perf_counter()
        if kind == "put_writes":
            saver.put_writes(*args)
            pending += time.perf_counter() - start
            continue
        saver.put(*args)
        _, checkpoint, _, new_versions = args
        if "messages" in new_versions:
            steps = len(checkpoint["channel_values"]["messages"])
            spent[steps] = pending + time.perf_counter() - start
        pending = 0.0
    return spent


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def run(name: str, opener: Opener, milestones: list[int], workdir: Path) -> dict[str, Any]:
    path = workdir / f"{name}.db"
    config: RunnableConfig = {"configurable": {"thread_id": "long"}, "recursion_limit": 10**6}
    sizes: dict[int, int] = {}
    calls: list[Call] = []
    start = time.perf_counter()
    for target in milestones:
        with opener(path) as saver:
            recorded(saver, calls)
            graph(saver).invoke({"target": target}, config, durability="sync")
        sizes[target] = size_of(path)
        print(f"  {name}: {target} steps, {sizes[target] / 1e6:.2f} MB", file=sys.stderr)
    live_s = time.perf_counter() - start
    with opener(workdir / f"{name}-replay.db") as saver:
        spent = replay(saver, calls)
    calls.clear()

    def median_ending_at(step: int) -> float:
        return statistics.median(spent[s] for s in range(max(1, step - 19), step + 1)) * 1e3

    last = milestones[-1]
    result: dict[str, Any] = {
        "sizes": {
            str(steps): {
                "bytes": size,
                "ratio_to_payload": size / (steps * MESSAGE_BYTES),
            }
            for steps, size in sizes.items()
        },
        "write_ms": {str(s): median_ending_at(s) for s in sorted({10, 1000, last}) if s <= last},
        "live_run_s": live_s,
    }
    with opener(path) as saver:
        start = time.perf_counter()
        saver.get_tuple({"configurable": {"thread_id": "long"}})
        result["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result["history_checkpoints"] = sum(
            1 for _ in saver.list({"configurable": {"thread_id": "long"}})
        )
        result["history_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with opener(path) as saver:
        graph(saver).invoke({"target": last + 1}, config, durability="sync")
    result["resume_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,1000,2000,5000")
    parser.add_argument("--baseline-max", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    milestones = [int(s) for s in args.steps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = {"tierflow SqliteStore": run("tierflow", open_tierflow, milestones, Path(tmp))}
        baseline = [m for m in milestones if m <= args.baseline_max]
        if baseline:  # --baseline-max 0 measures tierflow's store alone
            results["LangGraph SqliteSaver"] = run("langgraph", open_langgraph, baseline, Path(tmp))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "message_bytes": MESSAGE_BYTES,
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
