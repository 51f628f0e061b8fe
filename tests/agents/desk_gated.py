"""The support_desk example as its offline demo runs it, with one gate added for the
SIGKILL tests: `search_policies` blocks once when `DESK_GATE` names a flag file that
does not exist yet (it creates it and prints DESK_GATE_REACHED first). Without a policy,
so the same agent runs on SQLite and on Postgres; its objective, plan and reminder are
the example's own."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from tierflow import tool
from tierflow.runs.load import load_agent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk.py"

desk, _ = load_agent(str(EXAMPLE))
original = next(t for t in desk.tools if t.name == "search_policies")


def search_policies(query: str) -> Any:
    flag = os.environ.get("DESK_GATE")
    if flag and not Path(flag).exists():
        Path(flag).write_text("reached", encoding="utf-8")
        sys.stdout.write("DESK_GATE_REACHED\n")
        sys.stdout.flush()
        threading.Event().wait()  # until SIGKILL
    return original.fn(query)


gated = tool(name=original.name, description=original.description)(search_policies)
agent = desk.model_copy(
    update={
        "policy": None,
        "tools": tuple(gated if t.name == original.name else t for t in desk.tools),
    }
)
