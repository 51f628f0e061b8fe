"""The kill/resume harness: the `tierflow` command in a process of its own, killed with
SIGKILL where a test asks, then resumed.

A run dies at a crash point (`TIERFLOW_CRASH_AT`, see `tierflow/testing/faults.py`), by
a test agent's own hand, or at a gate: a test agent's tool prints a line and blocks
until the harness kills the process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

KILLED = -signal.SIGKILL  # the return code of a process SIGKILL ended
COMMAND = (sys.executable, "-m", "tierflow")


def tierflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m tierflow ARGS` in a process of its own."""
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def sigkilled(*args: str, env: dict[str, str]) -> None:
    """`tierflow ARGS`, which must die of SIGKILL (the agent or a crash point kills it)."""
    done = tierflow(*args, env=env)
    assert done.returncode == KILLED, done.stderr


def kill_at(point: str, *args: str, env: dict[str, str], flag: Path) -> None:
    """`tierflow ARGS`, SIGKILLed at the crash point `point` (`name` or `name@N`): the
    flag file the crash point writes before dying says it died there."""
    sigkilled(*args, env={**env, "TIERFLOW_CRASH_AT": point, "TIERFLOW_CRASH_FLAG": str(flag)})
    assert flag.read_text(encoding="utf-8") == point.partition("@")[0]


def kill_at_gate(reached: str, *args: str, env: dict[str, str]) -> None:
    """`tierflow ARGS`, SIGKILLed once it prints `reached`: a gate tool of the test agent
    prints that line, then blocks."""
    with subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == reached
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == KILLED


def resume(thread: str, *args: str, db: str, env: dict[str, str]) -> dict[str, Any]:
    """The report of `tierflow resume THREAD ARGS --json`, which must exit 0."""
    done = tierflow("resume", thread, *args, "--db", db, "--json", env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def statuses(db: str, env: dict[str, str]) -> dict[str, str]:
    """Each thread's status, as `tierflow runs` lists it."""
    rows = json.loads(tierflow("runs", "--db", db, "--json", env=env).stdout)
    return {row["thread"]: row["status"] for row in rows}
