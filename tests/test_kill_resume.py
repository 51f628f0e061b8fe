"""A run killed with SIGKILL mid-step resumes with `tierflow resume` to the same end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from killing import kill_at_gate, resume, statuses, tierflow

pytestmark = pytest.mark.slow  # a run in a process of its own, killed and resumed

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
    # Killed while the gate tool runs inside the `act` node of the third step.
    kill_at_gate(
        "CRASHY_GATE_REACHED",
        "run", str(AGENT), "--input", REQUEST, "--thread", "killed", "--db", db, "--json",
        env=killed_env,
    )  # fmt: skip
    assert statuses(db, env)["killed"] == "crashed"

    report = resume("killed", db=db, env=killed_env)
    assert report["status"] == "done"
    assert report["answer"] == expected["answer"]
    assert report["plan"] == expected["plan"]
    assert [s["step"] for s in report["plan"]] == ["do a", "do b", "pass the gate", "report"]
    # Checkpointed steps did not run again; only the step in flight (the gate) did.
    log = Path(env["CRASHY_LOG"]).read_text(encoding="utf-8").split()
    assert log == ["work", "a", "work", "b", "gate", "gate"]

    assert statuses(db, env) == {"calm": "done", "killed": "done"}
