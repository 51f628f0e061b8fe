"""SIGKILL mid-step, then `tierflow resume`, on both stores: the persistence reminder
(objective and plan) is the same before the kill and after the resume as in a run that
was never killed, step for step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from checkpoint_stores import target_fixture
from killing import kill_at_gate, resume, tierflow

from tierflow import store as run_store
from tierflow.nodes.remind import build_reminder

pytestmark = pytest.mark.slow  # runs in processes of their own, killed and resumed

AGENT = Path(__file__).parent / "agents" / "crashy.py"
REQUEST = "Please run the long task."

target = target_fixture()


def reminders(target: str, thread: str) -> list[tuple[Any, ...]]:
    """(step, objective, plan, reminder) of every checkpoint of the thread, oldest first;
    the reminder as the model node builds it from that checkpoint's state (it is never
    stored)."""
    with run_store.open(target) as store:
        found = list(store.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))
    rows = []
    for t in reversed(found):
        values = t.checkpoint["channel_values"]
        objective, plan = values.get("objective"), values.get("plan")
        reminder = build_reminder(objective or "", plan or [], values.get("steps", 0), None)
        rows.append((t.metadata["step"], objective, plan, reminder))
    return rows


def test_the_reminder_survives_sigkill_and_resume(tmp_path: Path, target: str) -> None:
    env = {**os.environ, "CRASHY_LOG": str(tmp_path / "log.txt")}
    calm = tierflow(
        "run", str(AGENT), "--input", REQUEST, "--thread", "calm", "--db", target, "--json", env=env
    )
    assert calm.returncode == 0, calm.stderr
    expected = reminders(target, "calm")

    killed_env = {**env, "CRASHY_GATE": str(tmp_path / "gate.flag")}
    # Killed while the gate tool runs inside `act`, after the third model call.
    kill_at_gate(
        "CRASHY_GATE_REACHED",
        "run", str(AGENT), "--input", REQUEST, "--thread", "killed", "--db", target, "--json",
        env=killed_env,
    )  # fmt: skip

    at_kill = reminders(target, "killed")
    _, objective, plan, reminder = at_kill[-1]
    assert objective == REQUEST
    assert [(p["step"], p["status"]) for p in plan][:3] == [
        ("do a", "done"),
        ("do b", "done"),
        ("pass the gate", "pending"),
    ]
    assert "Objective: Please run the long task." in reminder
    assert at_kill == expected[: len(at_kill)]  # the same reminder, step for step

    assert resume("killed", db=target, env=killed_env)["status"] == "done"
    assert reminders(target, "killed") == expected
    assert reminders(target, "killed")[: len(at_kill)] == at_kill


DESK = Path(__file__).parent / "agents" / "desk_gated.py"
DESK_REQUEST = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)


def test_the_example_reminder_survives_sigkill_and_resume(tmp_path: Path, target: str) -> None:
    """The support_desk example's refund request, killed inside its first tool turn."""
    env = {**os.environ, "TIERFLOW_SHOP_DB": str(tmp_path / "shop.db")}
    calm = tierflow(
        "run", str(DESK), "--input", DESK_REQUEST, "--thread", "calm", "--db", target,
        "--json", env=env,
    )  # fmt: skip
    assert calm.returncode == 0, calm.stderr
    assert json.loads(calm.stdout)["status"] == "done"
    expected = reminders(target, "calm")

    killed_env = {**env, "DESK_GATE": str(tmp_path / "desk.flag")}
    # Killed in `act` of the first model turn, after update_plan set the plan.
    kill_at_gate(
        "DESK_GATE_REACHED",
        "run", str(DESK), "--input", DESK_REQUEST, "--thread", "killed", "--db", target, "--json",
        env=killed_env,
    )  # fmt: skip

    at_kill = reminders(target, "killed")
    _, objective, _, reminder = at_kill[-1]
    assert objective == DESK_REQUEST
    assert f"Objective: {DESK_REQUEST}" in reminder
    assert at_kill == expected[: len(at_kill)]

    report = resume("killed", db=target, env=killed_env)
    assert report["status"] == "done"
    assert [s["step"] for s in report["plan"]] == [
        "check order 1042",
        "check the damage policy",
        "record the refund",
        "answer",
    ]
    assert reminders(target, "killed") == expected
