"""A governed agent that records one refund in the example shop and can SIGKILL itself
right after the refund's side effect (`REFUND_CRASH=after_effect`) or right after the
governor recorded its outcome (`REFUND_CRASH=after_record`) — both before the step's
checkpoint. It crashes once: `REFUND_CRASH_FLAG` marks that it did. Every time the tool
function runs it appends to `$REFUND_LOG`."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, ToolContext, Turn, tool
from tierflow.governance import Grant, Policy
from tierflow.governance.side_effects import RecordedResult, SideEffects

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop.py"


def _shop() -> ModuleType:
    name = "tierflow_example_shop"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SHOP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _crash_once(point: str) -> None:
    flag = os.environ.get("REFUND_CRASH_FLAG")
    if os.environ.get("REFUND_CRASH") != point or not flag or Path(flag).exists():
        return
    Path(flag).write_text(point, encoding="utf-8")
    os.kill(os.getpid(), signal.SIGKILL)


@tool(scope="refunds:write", side_effects=True)
def refund(order_id: int, amount_usd: float, reason: str, call: ToolContext) -> dict[str, Any]:
    """Refund part of an order."""
    with Path(os.environ["REFUND_LOG"]).open("a", encoding="utf-8") as log:
        log.write("refund\n")
    shop = _shop()
    path = shop.ensure_shop_db(Path(os.environ["TIERFLOW_SHOP_DB"]))
    done: dict[str, Any] = shop.refund(
        path, order_id, amount_usd, reason, idempotency_key=call.idempotency_key
    )
    _crash_once("after_effect")
    return done


_record = SideEffects.record


def _record_then_crash(self: SideEffects, key: str, *, ok: bool, content: str) -> RecordedResult:
    recorded = _record(self, key, ok=ok, content=content)
    _crash_once("after_record")
    return recorded


# The class, not an instance: the governor makes its own SideEffects.
SideEffects.record = _record_then_crash  # type: ignore[method-assign]

SCRIPT = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="refund order 1042",
            turns=(
                Turn(calls=(("refund", {"order_id": 1042, "amount_usd": 25.0, "reason": "late"}),)),
                Turn(text="Refunded $25.00 on order 1042."),
            ),
        ),
    )
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="refunding",
    instructions="Record refunds.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(refund,),
    policy=Policy(grants=(Grant(holder="agent:refunding", scopes=frozenset({"refunds:write"})),)),
)
