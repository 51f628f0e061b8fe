"""How long tierflow takes to start (issue 12): the wall time of a fresh interpreter that
imports plain LangGraph, imports tierflow, declares a small agent, or prints
`tierflow --help`. Each is run `--runs` times (default 5), the cases interleaved so
that a busy machine slows them alike, after one untimed warm-up round; the median
counts. Done when `import tierflow` takes at most `import langgraph.graph` + 0.3 s.
Prints a table; writes bench/results-imports.json.

    python bench/imports.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_import_weight import DECLARE

OUT = Path(__file__).with_name("results-imports.json")
MARGIN_S = 0.3  # the allowance over plain LangGraph
CASES = {
    "import langgraph.graph": [sys.executable, "-c", "import langgraph.graph"],
    "import tierflow": [sys.executable, "-c", "import tierflow"],
    "declare an agent (tool, rules router, output schema)": [sys.executable, "-c", DECLARE],
    "tierflow --help": [sys.executable, "-m", "tierflow", "--help"],
}


def wall_s(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for command in CASES.values():  # warm-up: the file cache, bytecode
        wall_s(command)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, command in CASES.items():
            times[name].append(wall_s(command))
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    baseline = medians["import langgraph.graph"]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "runs": args.runs,
        "cases": {
            name: {
                "median_s": round(medians[name], 3),
                "over_langgraph_s": round(medians[name] - baseline, 3),
                "runs_s": [round(t, 3) for t in times[name]],
            }
            for name in CASES
        },
        "target": f"import tierflow <= import langgraph.graph + {MARGIN_S} s",
        "target_met": medians["import tierflow"] <= baseline + MARGIN_S,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    width = max(map(len, CASES))
    print(f"{'case':<{width}}  median s  vs langgraph  min s   max s   ({args.runs} runs)")
    for name, runs in times.items():
        print(
            f"{name:<{width}}  {medians[name]:8.3f}  {medians[name] - baseline:+11.3f}  "
            f"{min(runs):6.3f}  {max(runs):6.3f}"
        )
    print(f"{report['target']}: {'met' if report['target_met'] else 'NOT met'} → {OUT}")


if __name__ == "__main__":
    main()
