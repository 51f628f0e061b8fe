"""Many runs in one process: `tierflow batch`'s engine against a hand-built LangGraph
loop run with `asyncio.gather` (issue 18).

1,000 runs of 4 model turns (3 tool turns, then the answer); every model call awaits
50 ms and every tool call 20 ms (`ScriptedChatModel(latency_s=...)`, a tool that
`await asyncio.sleep`s), at most `--concurrency` runs at once on both sides:

- **tierflow**: `tierflow.runs.batch.Batch` in process, as `tierflow batch` runs it —
  every thread recorded `queued` in the runs table first, then each run holding its
  thread's lease, its runs row written at start and end, checkpoints on tierflow's
  SQLite store (`durability="sync"`), one `Capacity`.
- **langgraph**: the same ReAct loop hand-built (`bench/overhead.py::hand_built`: a
  `StateGraph(MessagesState)`, a model node, `ToolNode`, `tools_condition`) checkpointing
  to the same store, each run an `ainvoke` under an `asyncio.Semaphore(concurrency)`,
  all of them in one `asyncio.gather`.
- **tierflow-graph**: the tierflow agent's compiled graph run the way the hand-built one
  is (`ainvoke`s under the semaphore, no runs table, no leases): what the batch costs
  over the graph it runs.

Each side runs in a process of its own (this file, with `--worker`), after a warm-up
batch of a few runs; wall time covers the whole batch (tierflow's queueing included),
CPU time the process's. The sides take turns (in rotating order) over `--repeats`
rounds; the table shows each side's median and its throughput (runs/s) over the
hand-built loop's, from the same run of this file.

    python bench/batch.py [--quick] [--runs N] [--concurrency N] [--repeats N] [--out PATH]

Writes bench/results-batch.json (or PATH) and prints the table as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import HumanMessage
from overhead import ANSWER, REQUEST, build, check, machine, run_config, script, tick_function
from overhead import Side as GraphSide
from overhead import tierflow_agent as agent_for

from tierflow import store as run_store
from tierflow.runs.batch import Batch
from tierflow.runs.inputs import Request

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-batch.json"
WARM_UP_RUNS = 5

Side = Literal["tierflow", "tierflow-graph", "langgraph"]
SIDES: tuple[Side, ...] = ("tierflow", "tierflow-graph", "langgraph")


@dataclass(frozen=True)
class Job:
    side: Side
    runs: int
    turns: int
    concurrency: int
    model_s: float
    tool_s: float


# --- one side, in a process of its own -------------------------------------------------


def run_tierflow(job: Job, db: Path, runs: int, prefix: str) -> None:
    agent = agent_for(script(job.turns, job.model_s), tick_function(job.tool_s), job.turns)
    requests = [Request(n, REQUEST, f"{prefix}-{n}") for n in range(1, runs + 1)]
    batch = Batch(agent, requests, db=db, concurrency=job.concurrency)
    outcomes = batch.run()
    wrong = [o for o in outcomes if (o.status, o.answer) != ("done", ANSWER)]
    if wrong:
        raise RuntimeError(f"{len(wrong)} runs did not finish: {wrong[0]}")


def run_graph(job: Job, db: Path, runs: int, prefix: str) -> None:
    """The hand-built graph, or tierflow's compiled one, as a LangGraph user runs many."""
    side: GraphSide = "langgraph" if job.side == "langgraph" else "tierflow"

    async def main() -> None:
        gate = asyncio.Semaphore(job.concurrency)
        with run_store.open(db) as saver:
            graph = build(side, job.turns, saver, job.model_s, job.tool_s)

            async def one(n: int) -> None:
                config = run_config(side, f"{prefix}-{n}", job.turns)
                async with gate:
                    state = await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, config)
                check(state, job.turns)

            await asyncio.gather(*(one(n) for n in range(1, runs + 1)))

    asyncio.run(main())


def worker(job: Job) -> dict[str, float]:
    """A warm-up batch, then the measured one, each on a fresh database."""
    side = run_tierflow if job.side == "tierflow" else run_graph
    with tempfile.TemporaryDirectory(prefix="tierflow-batch-") as folder:
        side(job, Path(folder) / "warm-up.db", WARM_UP_RUNS, "warm-up")
        cpu, wall = time.process_time(), time.perf_counter()
        side(job, Path(folder) / "runs.db", job.runs, "run")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "runs_per_s": job.runs / wall}


def in_subprocess(job: Job) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(asdict(job))],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {job} failed:\n{completed.stderr}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# --- both sides, alternating --------------------------------------------------------------


def measure(jobs: dict[Side, Job], repeats: int) -> dict[Side, dict[str, Any]]:
    samples: dict[Side, list[dict[str, float]]] = {side: [] for side in SIDES}
    for repeat in range(repeats):
        for side in SIDES[repeat % len(SIDES) :] + SIDES[: repeat % len(SIDES)]:
            print(f"  round {repeat + 1}: {side} …", file=sys.stderr)
            samples[side].append(in_subprocess(jobs[side]))
    summary: dict[Side, dict[str, Any]] = {}
    for side, runs in samples.items():
        summary[side] = {
            metric: statistics.median(run[metric] for run in runs) for metric in runs[0]
        }
        summary[side]["wall_s_samples"] = [round(run["wall_s"], 2) for run in runs]
    return summary


LABELS: tuple[tuple[Side, str], ...] = (
    ("langgraph", "hand-built LangGraph, `ainvoke`s in `asyncio.gather`"),
    ("tierflow-graph", "tierflow's compiled graph, the same way"),
    ("tierflow", "`tierflow batch` (in process)"),
)


def ratios(sides: dict[Side, dict[str, Any]]) -> dict[Side, float]:
    """Each side's throughput over the hand-built loop's."""
    base = sides["langgraph"]["runs_per_s"]
    return {side: sides[side]["runs_per_s"] / base for side in SIDES}


def markdown(sides: dict[Side, dict[str, Any]]) -> str:
    over = ratios(sides)
    return "\n".join(
        [
            "| side | wall | CPU | throughput | ÷ hand-built |",
            "|---|---|---|---|---|",
            *(
                f"| {label} | {sides[side]['wall_s']:.1f} s | {sides[side]['cpu_s']:.1f} s "
                f"| {sides[side]['runs_per_s']:.1f} runs/s | {over[side]:.2f}× |"
                for side, label in LABELS
            ),
        ]
    )


@dataclass(frozen=True)
class Sizes:
    runs: int
    turns: int
    concurrency: int
    model_s: float
    tool_s: float
    repeats: int


FULL = Sizes(runs=1000, turns=4, concurrency=100, model_s=0.050, tool_s=0.020, repeats=1)
QUICK = Sizes(runs=20, turns=2, concurrency=5, model_s=0.002, tool_s=0.001, repeats=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--runs", type=int, help="runs per batch")
    parser.add_argument("--concurrency", type=int, help="runs at once, on both sides")
    parser.add_argument("--repeats", type=int, help="rounds of both sides (median)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--note", help="kept in the results: what was measured, and why")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Job(**json.loads(args.worker)))))
        return
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        runs=args.runs or base.runs,
        turns=base.turns,
        concurrency=args.concurrency or base.concurrency,
        model_s=base.model_s,
        tool_s=base.tool_s,
        repeats=args.repeats or base.repeats,
    )
    jobs = {
        side: Job(side, sizes.runs, sizes.turns, sizes.concurrency, sizes.model_s, sizes.tool_s)
        for side in SIDES
    }
    started, load = time.perf_counter(), os.getloadavg()
    sides = measure(jobs, sizes.repeats)
    over = ratios(sides)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "note": args.note,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "bench_wall_s": round(time.perf_counter() - started, 1),
        # Other work on the machine skews every number; the load says how much there was.
        "load_average_1m": {"start": load[0], "end": os.getloadavg()[0]},
        "sides": sides,
        # Throughput over the hand-built loop's: `tierflow` is the ratio.
        "throughput_ratio": round(over["tierflow"], 3),
        "graph_throughput_ratio": round(over["tierflow-graph"], 3),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(sides))


if __name__ == "__main__":
    main()
