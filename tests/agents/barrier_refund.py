"""A governed agent whose `refund` tool waits at a barrier, so a test can hold one
process inside a run while a second process asks for the same thread.

The barrier is two pipes the test passes to the process: the tool writes
`reached PID` to the file descriptor `$BARRIER_REACHED_FD`, then blocks reading one
byte from `$BARRIER_RELEASE_FD` until the test writes it (or SIGKILLs the process).
Without the variables there is no barrier. After it, the tool appends `refund` to
`$REFUND_LOG` and records the refund in the example shop (`$TIERFLOW_SHOP_DB`) with
the call's idempotency key: the log counts executions, the shop counts refunds."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, ToolContext, Turn, tool
from tierflow.governance import Grant, Policy

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop.py"
REQUEST = "Please refund order 1042: it was late."
ANSWER = "Refunded $25.00 on order 1042."


def _shop() -> ModuleType:
    name = "tierflow_example_shop"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SHOP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _barrier() -> None:
    reached, release = os.environ.get("BARRIER_REACHED_FD"), os.environ.get("BARRIER_RELEASE_FD")
    if reached is None or release is None:
        return
    os.write(int(reached), f"reached {os.getpid()}\n".encode())
    os.read(int(release), 1)


@tool(scope="refunds:write", side_effects=True)
def refund(order_id: int, amount_usd: float, reason: str, call: ToolContext) -> dict[str, Any]:
    """Refund part of an order."""
    _barrier()
    with Path(os.environ["REFUND_LOG"]).open("a", encoding="utf-8") as log:
        log.write("refund\n")
    shop = _shop()
    path = shop.ensure_shop_db(Path(os.environ["TIERFLOW_SHOP_DB"]))
    done: dict[str, Any] = shop.refund(
        path, order_id, amount_usd, reason, idempotency_key=call.idempotency_key
    )
    return done


SCRIPT = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="refund order 1042",
            turns=(
                Turn(calls=(("refund", {"order_id": 1042, "amount_usd": 25.0, "reason": "late"}),)),
                Turn(text=ANSWER),
            ),
        ),
    )
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="barrier_refund",
    instructions="Record refunds.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(refund,),
    policy=Policy(
        grants=(Grant(holder="agent:barrier_refund", scopes=frozenset({"refunds:write"})),),
        run_budget_usd=1.00,
    ),
)
