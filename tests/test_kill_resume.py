"""A run killed with SIGKILL mid-step resumes with `tierflow resume` to the same end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tierflow_process as tierflow

AGENT = Path(__file__).parent / "agents" / "crashy.py"
REQUEST = "Please run the long task."


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CRASHY_LOG": str(tmp_path / "log.txt")}


def test_sigkill_then_resume_reaches_the_same_answer_with_the_plan_intact(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = str(tmp_path / "runs.db")
    baseline = tierflow(
        "run", str(AGENT), "--input", REQUEST, "--thread", "calm", "--db", db, "--json", env=env
    )
    assert baseline.returncode == 0, baseline.stderr
    expected = json.loads(baseline.stdout)
    assert expected["status"] == "done"
    Path(env["CRASHY_LOG"]).unlink()

    killed_env = {**env, "CRASHY_GATE": str(tmp_path / "gate.flag")}
    command = [sys.executable, "-m", "tierflow", "run", str(AGENT), "--input", REQUEST]
    with subprocess.Popen(
        [*command, "--thread", "killed", "--db", db, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=killed_env,
    ) as process:
        assert process.stdout is not None
        # Blocks until the gate tool is running inside the `act` node of the third step.
        assert process.stdout.readline().strip() == "CRASHY_GATE_REACHED"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    runs = json.loads(tierflow("runs", "--db", db, "--json", env=env).stdout)
    assert {r["thread"]: r["status"] for r in runs}["killed"] == "crashed"

    resumed = tierflow("resume", "killed", "--db", db, "--json", env=killed_env)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "done"
    assert report["answer"] == expected["answer"]
    assert report["plan"] == expected["plan"]
    assert [s["step"] for s in report["plan"]] == ["do a", "do b", "pass the gate", "report"]
    # Checkpointed steps did not run again; only the step in flight (the gate) did.
    log = Path(env["CRASHY_LOG"]).read_text(encoding="utf-8").split()
    assert log == ["work", "a", "work", "b", "gate", "gate"]

    runs = json.loads(tierflow("runs", "--db", db, "--json", env=env).stdout)
    assert {r["thread"]: r["status"] for r in runs} == {"calm": "done", "killed": "done"}
