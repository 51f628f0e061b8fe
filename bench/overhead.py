"""tierflow's overhead over the same ReAct loop hand-built in LangGraph (issue 12).

Both sides play one `ScriptedChatModel` script (n - 1 tool turns, then the answer) with
one tool and the same saver. The hand-built graph is what a user would otherwise write:
`StateGraph(MessagesState)`, a model node calling the model bound with the tool,
`ToolNode` and `tools_condition`. The tierflow side is an `Agent` (one tool, no
guardrails, no plan tool, `Limits(max_steps=n)`) compiled with `agent.compile(
checkpointer=...)`. Both are run with `graph.invoke` / `graph.ainvoke` on a thread id.

Every measurement runs in a process of its own (this file, with `--worker`), so imports,
garbage from earlier runs and CPU time never leak from one side into the other; the
ratios compare numbers taken in the same run of this file. Per-turn numbers are the
median of `--repeats` runs of each side, alternating sides, each on a fresh saver (a
fresh file for SQLite). `--quick` (a smoke test: tiny sizes, everything in this
process) checks the bench, not tierflow.

    python bench/overhead.py [--quick] [--out PATH] [--repeats N] [--note TEXT]

Writes bench/results-overhead.json (or PATH) and prints the table as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from hardware import cpu_model
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from tierflow import Agent, Limits, Price, Scenario, ScriptedChatModel, Tier, Turn
from tierflow import store as run_store
from tierflow import tool as tierflow_tool

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-overhead.json"
INSTRUCTIONS = "Count to the end with the tick tool, then say you counted."
REQUEST = "count to the end"
ANSWER = "counted"
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

Side = Literal["langgraph", "tierflow"]
SaverName = Literal["memory", "tierflow-sqlite", "sqlitesaver"]
SIDES: tuple[Side, ...] = ("langgraph", "tierflow")
SAVER_LABELS: dict[SaverName, str] = {
    "memory": "InMemorySaver",
    "tierflow-sqlite": "tierflow's SQLite store",
    "sqlitesaver": "LangGraph SqliteSaver",
}


# --- the two graphs -------------------------------------------------------------------


def script(turns: int, latency_s: float = 0.0) -> ScriptedChatModel:
    """`turns` model turns: `turns - 1` calls of `tick`, then the answer."""
    calls = tuple(Turn(calls=(("tick", {"n": n}),)) for n in range(turns - 1))
    scenario = Scenario(match="count", turns=(*calls, Turn(text=ANSWER)))
    return ScriptedChatModel(scenarios=(scenario,), model_name="bench", latency_s=latency_s)


def tick_function(latency_s: float) -> Callable[..., Any]:
    """The tool's body: sync without latency, async (awaiting `latency_s`) with it."""
    if not latency_s:

        def tick(n: int) -> str:
            """Count one step."""
            return f"tick {n}"

        return tick

    async def atick(n: int) -> str:
        """Count one step."""
        await asyncio.sleep(latency_s)
        return f"tick {n}"

    return atick


def hand_built(
    model: ScriptedChatModel, tick: Callable[..., Any], saver: BaseCheckpointSaver[Any]
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The ReAct loop as a LangGraph user writes it: model node, `ToolNode`,
    `tools_condition`."""
    is_async = inspect.iscoroutinefunction(tick)
    lc_tool = StructuredTool.from_function(
        func=None if is_async else tick,
        coroutine=tick if is_async else None,
        name="tick",
        description="Count one step.",
    )
    bound = model.bind_tools([lc_tool])

    def prompt(state: MessagesState) -> list[BaseMessage]:
        return [SystemMessage(INSTRUCTIONS), *state["messages"]]

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(prompt(state))]}

    async def acall_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(prompt(state))]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", RunnableLambda(call_model, afunc=acall_model, name="model"))
    builder.add_node("tools", ToolNode([lc_tool]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=saver)


def tierflow_agent(model: ScriptedChatModel, tick: Callable[..., Any], turns: int) -> Agent:
    """One tool, no guardrails, no plan tool. `Agent` wants two tiers; the default router
    sends every request to the first, so the second never runs."""
    return Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        tiers=(
            Tier(name="fast", model=model, price=PRICE),
            Tier(name="spare", model=model, price=PRICE),
        ),
        tools=(tierflow_tool(name="tick")(tick),),
        plan_tool=False,
        limits=Limits(max_steps=turns),
    )


def build(
    side: Side,
    turns: int,
    saver: BaseCheckpointSaver[Any],
    model_s: float = 0.0,
    tool_s: float = 0.0,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    model, tick = script(turns, model_s), tick_function(tool_s)
    if side == "langgraph":
        return hand_built(model, tick, saver)
    return tierflow_agent(model, tick, turns).compile(checkpointer=saver)


def run_config(side: Side, thread_id: str, turns: int) -> RunnableConfig:
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    if side == "langgraph":  # model + tools per turn; tierflow derives its own from Limits
        config["recursion_limit"] = 2 * turns + 10
    return config


def check(state: dict[str, Any], turns: int) -> None:
    """Both sides did the whole run: the request, every turn and tool result, the answer."""
    messages = state["messages"]
    last = messages[-1]
    if len(messages) != 2 * turns or not isinstance(last, AIMessage) or last.text != ANSWER:
        raise RuntimeError(f"the run did not finish: {len(messages)} messages, last {last!r}")


@contextmanager
def open_saver(name: SaverName, folder: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    """A fresh saver (on a new file in `folder` for SQLite), closed afterwards."""
    path = folder / f"{uuid.uuid4().hex}.db"
    if name == "memory":
        yield InMemorySaver()
    elif name == "tierflow-sqlite":
        with run_store.open(path) as store:
            yield store
    else:
        connection = sqlite3.connect(path, check_same_thread=False)
        try:
            yield SqliteSaver(connection)
        finally:
            connection.close()


# --- workers: one measurement, in a process of its own ----------------------------------


@dataclass(frozen=True)
class Job:
    kind: Literal["turns", "concurrent"]
    side: Side
    saver: SaverName
    turns: int
    runs: int = 1
    model_s: float = 0.0
    tool_s: float = 0.0


def measure_turns(job: Job, folder: Path) -> dict[str, Any]:
    """One sync run of `job.turns` model turns on a fresh saver, after a short warm-up
    run (first-call caches, lazy imports)."""
    inputs = {"messages": [HumanMessage(REQUEST)]}
    with open_saver(job.saver, folder) as saver:
        check(build(job.side, 3, saver).invoke(inputs, run_config(job.side, "warm-up", 3)), 3)
    with open_saver(job.saver, folder) as saver:
        graph = build(job.side, job.turns, saver)
        config = run_config(job.side, "run", job.turns)
        cpu, wall = time.process_time(), time.perf_counter()
        state = graph.invoke(inputs, config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    check(state, job.turns)
    return {"ms_per_turn": wall * 1000 / job.turns, "cpu_ms_per_turn": cpu * 1000 / job.turns}


def measure_concurrent(job: Job, folder: Path) -> dict[str, Any]:
    """`job.runs` async runs of `job.turns` turns at once (`asyncio.gather`), on one saver;
    wall and process CPU time (every thread) around the gather."""

    async def main(graph: Any) -> tuple[float, float]:
        inputs = {"messages": [HumanMessage(REQUEST)]}
        warm = await graph.ainvoke(inputs, run_config(job.side, "warm-up", job.turns))
        check(warm, job.turns)
        cpu, wall = time.process_time(), time.perf_counter()
        states = await asyncio.gather(
            *(
                graph.ainvoke(inputs, run_config(job.side, f"run-{n}", job.turns))
                for n in range(job.runs)
            )
        )
        wall = time.perf_counter() - wall
        cpu_s = time.process_time() - cpu
        for state in states:
            check(state, job.turns)
        return wall, cpu_s

    with open_saver(job.saver, folder) as saver:
        graph = build(job.side, job.turns, saver, job.model_s, job.tool_s)
        wall, cpu = asyncio.run(main(graph))
    return {"wall_s": wall, "cpu_s": cpu}


def worker(job: Job) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tierflow-overhead-") as folder:
        if job.kind == "turns":
            return measure_turns(job, Path(folder))
        return measure_concurrent(job, Path(folder))


def in_subprocess(job: Job) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(asdict(job))],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {job} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# --- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: the hand-built side on `baseline` against tierflow."""

    id: str
    label: str
    metric: str
    target: float | None
    kind: Literal["turns", "concurrent"]
    baseline: SaverName
    saver: SaverName
    turns: int
    repeats: int = 1
    runs: int = 1
    model_s: float = 0.0
    tool_s: float = 0.0

    def job(self, side: Side) -> Job:
        return Job(
            kind=self.kind,
            side=side,
            saver=self.baseline if side == "langgraph" else self.saver,
            turns=self.turns,
            runs=self.runs,
            model_s=self.model_s,
            tool_s=self.tool_s,
        )


@dataclass(frozen=True)
class Sizes:
    turns: int
    long_turns: int
    runs: int
    run_turns: int
    model_s: float
    tool_s: float
    repeats: int
    long_repeats: int
    # One run of 1,000 concurrent ainvokes swings by ±50 % between runs on a small shared
    # machine (garbage collection, contention for the one SQLite file): a median of three.
    concurrent_repeats: int


FULL = Sizes(
    turns=100,
    long_turns=1000,
    runs=1000,
    run_turns=4,
    model_s=0.050,
    tool_s=0.020,
    repeats=5,
    long_repeats=1,
    concurrent_repeats=3,
)
QUICK = Sizes(
    turns=8,
    long_turns=16,
    runs=10,
    run_turns=2,
    model_s=0.002,
    tool_s=0.001,
    repeats=1,
    long_repeats=1,
    concurrent_repeats=1,
)


def rows(sizes: Sizes, repeats: int | None) -> list[Row]:
    n, long_n = sizes.turns, sizes.long_turns
    repeat = repeats or sizes.repeats
    same: dict[SaverName, tuple[SaverName, SaverName]] = {
        "memory": ("memory", "memory"),
        "tierflow-sqlite": ("tierflow-sqlite", "tierflow-sqlite"),
    }
    versus: tuple[SaverName, SaverName] = ("sqlitesaver", "tierflow-sqlite")

    def per_turn(
        id: str,
        label: str,
        target: float | None,
        savers: tuple[SaverName, SaverName],
        *,
        turns: int = n,
        repeat: int = repeat,
    ) -> Row:
        return Row(id, label, "ms_per_turn", target, "turns", *savers, turns, repeat)

    runs = (
        f"{sizes.runs:,} concurrent async runs × {sizes.run_turns} turns, "
        f"{sizes.model_s * 1000:g} ms model + {sizes.tool_s * 1000:g} ms tool, "
        "tierflow's SQLite store"
    )

    def concurrent(id: str, metric: str) -> Row:
        label = f"{runs}: {'wall' if metric == 'wall_s' else 'CPU'}"
        return Row(
            id,
            label,
            metric,
            1.3,
            "concurrent",
            *same["tierflow-sqlite"],
            sizes.run_turns,
            repeats=sizes.concurrent_repeats,
            runs=sizes.runs,
            model_s=sizes.model_s,
            tool_s=sizes.tool_s,
        )

    on_sqlitesaver = "hand-built on SqliteSaver, tierflow on its store"
    return [
        per_turn(
            f"turns_{n}_memory", f"per model turn, {n} turns, InMemorySaver", 1.2, same["memory"]
        ),
        per_turn(
            f"turns_{n}_tierflow_sqlite",
            f"per model turn, {n} turns, tierflow's SQLite store",
            1.2,
            same["tierflow-sqlite"],
        ),
        concurrent("concurrent_sqlite_wall", "wall_s"),
        concurrent("concurrent_sqlite_cpu", "cpu_s"),
        per_turn(
            f"turns_{n}_vs_sqlitesaver", f"per model turn, {n} turns: {on_sqlitesaver}", 1.0, versus
        ),
        per_turn(
            f"turns_{long_n}_vs_sqlitesaver",
            f"per model turn, {long_n:,} turns: {on_sqlitesaver}",
            None,
            versus,
            turns=long_n,
            repeat=sizes.long_repeats,
        ),
    ]


def measure_row(row: Row, *, isolate: bool) -> dict[Side, dict[str, Any]]:
    """`row.repeats` runs of each side, alternating (and alternating which goes first),
    so that a busy moment on the machine falls on both; the median of each."""
    samples: dict[Side, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for repeat in range(row.repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            job = row.job(side)
            print(f"  {row.id}: {side} on {SAVER_LABELS[job.saver]} …", file=sys.stderr)
            samples[side].append(in_subprocess(job) if isolate else worker(job))
    summary: dict[Side, dict[str, Any]] = {}
    for side, runs in samples.items():
        summary[side] = {"saver": row.job(side).saver}
        for metric in runs[0]:
            values = [run[metric] for run in runs]
            summary[side][metric] = statistics.median(values)
            if len(values) > 1:
                summary[side][f"{metric}_samples"] = [round(v, 4) for v in values]
    return summary


def measure(table: list[Row], *, isolate: bool) -> list[dict[str, Any]]:
    """Every row; rows with the same runs (the wall and CPU of the concurrent runs)
    share them. Each run in a process of its own when `isolate`."""
    done: dict[tuple[Job, Job, int], dict[Side, dict[str, Any]]] = {}
    results = []
    for row in table:
        key = (row.job("langgraph"), row.job("tierflow"), row.repeats)
        if key not in done:
            done[key] = measure_row(row, isolate=isolate)
        sides = done[key]
        baseline, ours = sides["langgraph"][row.metric], sides["tierflow"][row.metric]
        ratio = ours / baseline
        cpu = {}
        if row.metric == "ms_per_turn":
            cpu_ratio = sides["tierflow"]["cpu_ms_per_turn"] / sides["langgraph"]["cpu_ms_per_turn"]
            cpu = {"cpu_ratio": round(cpu_ratio, 3)}
        results.append(
            {
                "id": row.id,
                "label": row.label,
                "metric": row.metric,
                "langgraph": sides["langgraph"],
                "tierflow": sides["tierflow"],
                "ratio": round(ratio, 3),
                **cpu,
                "target": row.target,
                "meets_target": None if row.target is None else ratio <= row.target,
                "settings": {
                    "turns": row.turns,
                    "repeats": row.repeats,
                    "runs": row.runs,
                    "model_latency_s": row.model_s,
                    "tool_latency_s": row.tool_s,
                },
            }
        )
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    """The table; per-turn rows also show CPU time, steadier than wall time on a busy
    machine (the target is on wall time)."""
    units = {"ms_per_turn": "ms", "wall_s": "s", "cpu_s": "s"}
    lines = [
        "| measurement | hand-built LangGraph | tierflow | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for row in results:
        unit, metric = units[row["metric"]], row["metric"]
        target = "—" if row["target"] is None else f"≤{row['target']}×"
        mark = {True: " ✓", False: " ✗", None: ""}[row["meets_target"]]
        cells = [f"{row[side][metric]:.2f} {unit}" for side in SIDES]
        ratio = f"{row['ratio']:.2f}×{mark}"
        if "cpu_ratio" in row:
            cells = [
                f"{c} (CPU {row[side]['cpu_ms_per_turn']:.2f})"
                for c, side in zip(cells, SIDES, strict=True)
            ]
            ratio += f" (CPU {row['cpu_ratio']:.2f}×)"
        lines.append(f"| {row['label']} | {cells[0]} | {cells[1]} | {ratio} | {target} |")
    return "\n".join(lines)


def commit() -> str | None:
    """The tierflow commit measured, `+dirty` with uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "langgraph": metadata.version("langgraph"),
        "langgraph_checkpoint_sqlite": metadata.version("langgraph-checkpoint-sqlite"),
        "langchain_core": metadata.version("langchain-core"),
        "tierflow_commit": commit(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--repeats", type=int, help="runs per per-turn number (median)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process, not one process per measurement (implied by --quick)",
    )
    parser.add_argument("--note", help="kept in the results: what was measured, and why")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Job(**json.loads(args.worker)))))
        return
    sizes = QUICK if args.quick else FULL
    started, load = time.perf_counter(), os.getloadavg()
    results = measure(rows(sizes, args.repeats), isolate=not (args.quick or args.in_process))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "note": args.note,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "bench_wall_s": round(time.perf_counter() - started, 1),
        # Other work on the machine skews every number; the load says how much there was.
        "load_average_1m": {"start": load[0], "end": os.getloadavg()[0]},
        "rows": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
