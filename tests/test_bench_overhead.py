"""bench/overhead.py runs end to end at tiny sizes and writes every row of its table.

A smoke test of the bench, not a measurement: the targets are the bench's to measure
(full size, on a quiet machine), so nothing here compares times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the bench, in processes of its own

BENCH = Path(__file__).resolve().parent.parent / "bench" / "overhead.py"
QUICK_ROWS = [
    "turns_8_memory",
    "turns_8_tierflow_sqlite",
    "concurrent_sqlite_wall",
    "concurrent_sqlite_cpu",
    "turns_8_vs_sqlitesaver",
    "turns_16_vs_sqlitesaver",
]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_the_quick_bench_writes_every_row_with_positive_numbers(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    completed = bench("--quick", "--out", str(out))
    assert completed.returncode == 0, completed.stderr

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["quick"] is True
    machine = report["machine"]
    assert {"platform", "cpu", "cores", "python", "langgraph"} <= machine.keys()
    assert machine["cores"] > 0 and machine["langgraph"]
    assert report["date"]

    rows = report["rows"]
    assert [row["id"] for row in rows] == QUICK_ROWS
    for row in rows:
        metric = row["metric"]
        assert row["langgraph"][metric] > 0, row
        assert row["tierflow"][metric] > 0, row
        assert row["ratio"] > 0, row
        assert row["meets_target"] in (True, False, None)
    savers = {row["id"]: (row["langgraph"]["saver"], row["tierflow"]["saver"]) for row in rows}
    assert savers["turns_8_memory"] == ("memory", "memory")
    assert savers["concurrent_sqlite_wall"] == ("tierflow-sqlite", "tierflow-sqlite")
    assert savers["turns_8_vs_sqlitesaver"] == ("sqlitesaver", "tierflow-sqlite")

    table = completed.stdout.splitlines()
    assert table[0].startswith("| measurement | hand-built LangGraph | tierflow | ratio |")
    assert len(table) == 2 + len(rows)
    for line, row in zip(table[2:], rows, strict=True):
        assert line.startswith(f"| {row['label']} |")


def test_a_worker_measures_one_side_and_prints_json() -> None:
    """The full-size bench runs each measurement this way, in a process of its own."""
    job = {"kind": "turns", "side": "tierflow", "saver": "tierflow-sqlite", "turns": 3}
    completed = bench("--worker", json.dumps(job))
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.splitlines()[-1])
    assert result["ms_per_turn"] > 0 and result["cpu_ms_per_turn"] > 0
