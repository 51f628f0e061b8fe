"""A test agent whose third model turn passes a gate that can block until killed.

With `CRASHY_GATE=/path/flag` set and the flag file absent, the `gate` tool creates the
flag, prints CRASHY_GATE_REACHED and blocks: the test then SIGKILLs the process. On
resume the flag exists and the gate opens. Every tool call appends to `$CRASHY_LOG`, so
the test can see which steps ran again.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool


def _log(entry: str) -> None:
    log = os.environ.get("CRASHY_LOG")
    if log:
        with Path(log).open("a", encoding="utf-8") as handle:
            handle.write(entry + "\n")


@tool
def work(item: str) -> str:
    """Do one unit of work on `item`."""
    _log(f"work {item}")
    return f"did {item}"


@tool
def gate() -> str:
    """Wait for the gate to open."""
    _log("gate")
    flag = os.environ.get("CRASHY_GATE")
    if flag and not Path(flag).exists():
        Path(flag).write_text("reached", encoding="utf-8")
        sys.stdout.write("CRASHY_GATE_REACHED\n")
        sys.stdout.flush()
        threading.Event().wait()  # until SIGKILL
    return "gate open"


PLAN = ["do a", "do b", "pass the gate", "report"]


def plan(done: int) -> dict[str, list[dict[str, str]]]:
    return {
        "steps": [
            {"step": s, "status": "done" if i < done else "pending"} for i, s in enumerate(PLAN)
        ]
    }


SCRIPT = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="long task",
            turns=(
                Turn(calls=(("update_plan", plan(0)), ("work", {"item": "a"}))),
                Turn(calls=(("work", {"item": "b"}), ("update_plan", plan(2)))),
                Turn(calls=(("gate", {}), ("update_plan", plan(3)))),
                Turn(text="Finished: did a, did b, gate open."),
            ),
        ),
    )
)

PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="crashy",
    instructions="Work through the plan.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(work, gate),
)

not_an_agent = 42
