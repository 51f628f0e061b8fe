"""A governed test agent: `refund` needs refunds:write and, above $200, a reviewer's
approval; every refund that runs is appended to `$GOVERNED_LOG`. `tight` is the same
agent with a run budget too small for one model call."""

from __future__ import annotations

import os
from pathlib import Path

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool
from tierflow.governance import ApprovalRule, Grant, Policy


@tool(scope="refunds:write", side_effects=True)
def refund(order_id: int, amount_usd: float) -> str:
    """Refund an order."""
    log = os.environ.get("GOVERNED_LOG")
    if log:
        with Path(log).open("a", encoding="utf-8") as handle:
            handle.write(f"refund {order_id} {amount_usd:g}\n")
    return f"refunded ${amount_usd:.2f} on order {order_id}"


SCRIPT = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="refund order 7",
            turns=(
                Turn(calls=(("refund", {"order_id": 7, "amount_usd": 300.0}),)),
                Turn(text="Refund handled."),
            ),
        ),
        Scenario(match="hello", turns=(Turn(text="Hello there."),)),
    )
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
POLICY = Policy(
    grants=(Grant(holder="agent:governed", scopes=frozenset({"refunds:write"})),),
    approvals=(ApprovalRule(scope="refunds:write", argument="amount_usd", above=200),),
)

agent = Agent(
    name="governed",
    instructions="Handle refunds.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(refund,),
    policy=POLICY,
)

tight = agent.model_copy(update={"policy": POLICY.model_copy(update={"run_budget_usd": 0.000001})})
