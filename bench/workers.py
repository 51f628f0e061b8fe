"""Throughput of `tierflow worker` processes on one Postgres queue: 1 worker vs 2, for
latency-bound runs (issue 18's target: 2 workers at least 1.8 times one, on the same machine).

A run is 4 model turns of this file's `agent`: a scripted model that sleeps 50 ms per
call, as a provider's round trip would (`BENCH_MODEL_S`), and 3 tool calls of 20 ms
(`BENCH_TOOL_S`) — ungoverned, checkpointed to Postgres at every step. Each trial gets a
fresh database and its workers (`--concurrency` runs at once each); after a warm-up of
2 runs per worker slot (agent loaded, graph compiled), `--runs` runs are submitted and
the clock runs from the submit to the last run's `finish` line. The trials of 1 and 2
workers alternate (`--repeat` times each; the medians are compared), so a change in the
machine's load falls on both.

    python bench/workers.py [--db postgresql://…] [--runs 150] [--concurrency 2 4] [--repeat 2]

Each `--concurrency` value is one pair of trials. At 2 runs at once a worker waits on
its runs' latency; at 4, on this 2-core machine, one worker's Python already takes about
a core and two, with Postgres beside them, share two: the CPU, not the latency, bounds
them. The load average after each trial is recorded: the machine may be shared.

Writes bench/results-workers.json (machine and date).
"""

from __future__ import annotations

import os
import time
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool


class LatencyModel(ScriptedChatModel):
    """The scripted model, answering after a provider's round trip."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(float(os.environ.get("BENCH_MODEL_S", "0.05")))
        return super()._generate(messages, stop, run_manager, **kwargs)


@tool
def fetch(step: int) -> str:
    """Fetch what step `step` needs."""
    time.sleep(float(os.environ.get("BENCH_TOOL_S", "0.02")))
    return f"data for step {step}"


MODEL = LatencyModel(
    scenarios=(
        Scenario(
            match="",
            turns=(
                *(Turn(calls=(("fetch", {"step": step}),)) for step in (1, 2, 3)),
                Turn(text="All three steps fetched."),
            ),
        ),
    )
)
PRICE = Price(input=2.0, cached_input=0.5, output=8.0)
agent = Agent(
    name="latency_bound",
    instructions="Fetch the three steps, then answer.",
    tiers=(
        Tier(name="fast", model=MODEL, price=PRICE),
        Tier(name="reasoning", model=MODEL, price=PRICE),
    ),
    tools=(fetch,),
)


def trial(server: str, workers: int, runs: int, concurrency: int) -> dict[str, Any]:
    """`runs` runs through `workers` worker processes: runs per second."""
    import tempfile
    from contextlib import ExitStack
    from pathlib import Path

    from fleet_check import Worker, eventually, fresh_database

    from tierflow.runs.load import load_declared
    from tierflow.workers import submit

    declared, source = load_declared(f"{__file__}:agent")
    with (
        fresh_database(server, "bench_workers") as url,
        tempfile.TemporaryDirectory() as scratch,
        ExitStack() as stack,
    ):
        fleet = []
        for number in range(workers):
            args = ("--concurrency", str(concurrency))
            started = Worker(f"w{number}", url, Path(scratch), dict(os.environ), *args)
            stack.callback(started.stop)
            fleet.append(started)
        for started in fleet:
            started.ready()

        def finished() -> list[float]:
            return [x.at for w in fleet for x in w.lines() if x.kind == "finish"]

        warm_up = 2 * workers * concurrency
        submit(declared, source, ["warm up"] * warm_up, url)
        eventually(lambda: len(finished()) >= warm_up, "the warm-up", 300)
        begin = time.time()
        submit(declared, source, ["go"] * runs, url)
        submitted = time.time() - begin
        eventually(lambda: len(finished()) >= warm_up + runs, "the runs", 600)
        seconds = max(finished()) - begin
        statuses = {line.status for w in fleet for line in w.lines() if line.kind == "finish"}
    return {
        "workers": workers,
        "concurrency_each": concurrency,
        "runs": runs,
        "seconds": round(seconds, 2),
        "runs_per_s": round(runs / seconds, 2),
        "submit_ms_per_run": round(submitted / runs * 1000, 1),  # while the workers run
        "statuses": sorted(statuses),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    import argparse
    import json
    import statistics
    from datetime import UTC, datetime
    from pathlib import Path

    from hardware import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", default=os.environ.get("TIERFLOW_TEST_POSTGRES"))
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not args.db:
        parser.error("--db postgresql://… (or TIERFLOW_TEST_POSTGRES) names the server")
    compared = []
    for concurrency in args.concurrency:
        trials: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for _ in range(args.repeat):  # alternated, so a change of load hits both
            for workers in (1, 2):
                trials[workers].append(trial(args.db, workers, args.runs, concurrency))
        rates = {w: round(statistics.median(t["runs_per_s"] for t in trials[w]), 2) for w in trials}
        compared.append(
            {
                "concurrency_each": concurrency,
                "one_worker_runs_per_s": rates[1],
                "two_workers_runs_per_s": rates[2],
                "ratio": round(rates[2] / rates[1], 2),
                "trials": trials[1] + trials[2],
            }
        )
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "run": {
            "model_turns": 4,
            "model_latency_s": float(os.environ.get("BENCH_MODEL_S", "0.05")),
            "tool_calls": 3,
            "tool_latency_s": float(os.environ.get("BENCH_TOOL_S", "0.02")),
        },
        "trials": compared,
    }
    path = Path(__file__).with_name("results-workers.json")
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
