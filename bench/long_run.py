"""A 10,000-model-step run on tierflow's SQLite store finishes `done` (issue: limits that
hold at any length). Prints the wall time, the per-step time at the start and the end,
and the file size; writes bench/results-long-run.json.

    python bench/long_run.py [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_long_runs import long_agent

from tierflow.runs.runner import Runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    agent = long_agent(args.steps)
    stamps: list[float] = []

    def on_update(node: str, _update: Any) -> None:
        if node.startswith("model"):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "runs.db"
        runner = Runner(agent, db=db, on_update=on_update)
        started = time.perf_counter()
        report = runner.run("count to the end", "long")
        wall = time.perf_counter() - started
        size = db.stat().st_size + sum(p.stat().st_size for p in Path(folder).glob("runs.db-*"))
    window = min(100, len(stamps) // 4)
    first = (stamps[window] - stamps[0]) / window
    last = (stamps[-1] - stamps[-1 - window]) / window
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": (
            f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "steps": args.steps,
        "status": report.status,
        "model_steps": len(report.steps),
        "wall_s": round(wall, 1),
        "ms_per_step_first_100": round(first * 1000, 2),
        "ms_per_step_last_100": round(last * 1000, 2),
        "db_bytes": size,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).with_name("results-long-run.json")
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if report.status != "done":
        sys.exit(1)


if __name__ == "__main__":
    main()
