"""order_dispute: a workflow that settles a customer's order dispute, step by step, each
step at the intelligence it needs.

    classify (fast, low effort; escalates to reasoning if it fails)
    → gather the facts in parallel: the order (fast, a tool), the policy (fast, a tool)
    → decide the remedy (reasoning, high effort; its own budget)
    → draft the reply (fast) → guards on the reply
    → a human approves refunds above $200
    → record the refund (exactly once)

Runs offline on scripted models (`workflow`); `--provider NAME` serves the tiers with
real models (`providers/NAME.toml`), as for the support desk.

    tierflow run examples/dispute.py -i "The espresso machine from order 1042 arrived damaged."
    tierflow resume THREAD --approve
    tierflow bench-routes examples/dispute.py
    tierflow draw examples/dispute.py
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from tierflow import (
    Agent,
    AgentStep,
    Approval,
    FunctionStep,
    Parallel,
    Price,
    Scenario,
    ScriptedChatModel,
    Tier,
    ToolContext,
    Turn,
    Workflow,
)
from tierflow.governance import Grant, Policy
from tierflow.guardrails import guardrail


def _load(name: str) -> ModuleType:
    # Loaded by path: this file is itself loaded by path (`tierflow run FILE`).
    module_name = f"tierflow_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


desk = _load("support_desk")  # the shop, its database and its read tools
shop, shop_db = desk.shop, desk.shop_db

FAST = Price(input=2.00, cached_input=0.50, output=8.00)  # GPT-4.1, USD per 1M tokens
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)  # GPT-5.2

DAMAGED = "arrived damaged"  # the request of the first demo scenario contains this
LATE = "is late"  # … and of the second

DEMO_REQUESTS: tuple[tuple[str, str], ...] = (
    (
        "damaged item, refund above $200 (approval)",
        "Hi, Alice Martin here. The espresso machine from order 1042 arrived damaged. "
        "I want my money back.",
    ),
    ("late delivery, shipping refunded", "My order 1007 is late. Please refund the shipping."),
)


def scripted(name: str, fast: dict[str, list[Turn]], reasoning: dict[str, list[Turn]]) -> Agent:
    """A two-tier agent whose tiers replay `fast` / `reasoning` (request text → turns)."""

    def model(turns: dict[str, list[Turn]], label: str) -> ScriptedChatModel:
        scenarios = tuple(Scenario(match=m, turns=tuple(t)) for m, t in turns.items())
        return ScriptedChatModel(scenarios=scenarios, model_name=f"scripted:{label}")

    return Agent(
        name=name,
        instructions=INSTRUCTIONS[name],
        tiers=(
            Tier(name="fast", model=model(fast, "gpt-4.1"), price=FAST),
            Tier(name="reasoning", model=model(reasoning, "gpt-5.2"), price=REASONING),
        ),
        tools=TOOLS.get(name, ()),
        plan_tool=False,
    )


INSTRUCTIONS = {
    "classifier": "Classify the customer's dispute. Answer with JSON: "
    '{"kind": "damaged_item" | "late_delivery" | "other", "order_id": int}.',
    "order_clerk": "Look the order up with order_details and answer with the facts as JSON.",
    "policy_clerk": "Find the shop's policy for this kind of dispute with search_policies; "
    "answer with the policy's text.",
    "judge": "Decide the remedy from the facts and the policy. Answer with JSON: "
    '{"remedy": "refund" | "none", "order_id": int, "amount_usd": number, "reason": str}. '
    "Refund what the policy allows, never more than what the customer paid for the item.",
    "writer": "Write the reply to the customer: short, kind, and exact about amounts.",
}
TOOLS = {"order_clerk": (desk.order_details,), "policy_clerk": (desk.search_policies,)}


def thinking(turns: dict[str, list[Turn]], tokens: int) -> dict[str, list[Turn]]:
    """The same turns on the reasoning tier, which thinks before it answers even an easy
    step: `tokens` reasoning tokens a turn (billed as output) — a modelled figure."""
    return {
        match: [t.model_copy(update={"reasoning_tokens": tokens}) for t in played]
        for match, played in turns.items()
    }


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value)


def _lookup(order_id: int, facts: Mapping[str, Any]) -> list[Turn]:
    return [Turn(calls=(("order_details", {"order_id": order_id}),)), Turn(text=_json(facts))]


ORDER_1042 = {
    "order_id": 1042,
    "items": [["Espresso Machine Pro", 349.0], ["Ceramic Cup Set", 24.5]],
}
ORDER_1007 = {"order_id": 1007, "status": "shipped", "shipping_usd": 4.90}
DECISION_1042 = {"remedy": "refund", "order_id": 1042, "amount_usd": 349.0, "reason": "damaged"}
# What the fast tier decides when asked to judge (bench-routes' all-fast): the whole order.
DECISION_1042_FAST = {**DECISION_1042, "amount_usd": 398.0}
DECISION_1007 = {"remedy": "refund", "order_id": 1007, "amount_usd": 4.9, "reason": "late"}

classifier = scripted(
    "classifier",
    fast={
        DAMAGED: [Turn(text='{"kind": "damaged_item", "order_id": 1042}')],
        LATE: [Turn(text='{"kind": "late_delivery", "order_id": 1007}')],
    },
    reasoning={
        DAMAGED: [Turn(text='{"kind": "damaged_item", "order_id": 1042}', reasoning_tokens=200)],
        LATE: [Turn(text='{"kind": "late_delivery", "order_id": 1007}', reasoning_tokens=200)],
    },
)
_clerk_turns = {DAMAGED: _lookup(1042, ORDER_1042), LATE: _lookup(1007, ORDER_1007)}
order_clerk = scripted("order_clerk", fast=_clerk_turns, reasoning=thinking(_clerk_turns, 250))
_policy_turns = {
    DAMAGED: [
        Turn(calls=(("search_policies", {"query": "damaged item"}),)),
        Turn(text="Damaged items are refunded in full (the item's price) on request."),
    ],
    LATE: [
        Turn(calls=(("search_policies", {"query": "shipping"}),)),
        Turn(text="Standard shipping costs $4.90 and is refunded when an order is late."),
    ],
}
policy_clerk = scripted("policy_clerk", fast=_policy_turns, reasoning=thinking(_policy_turns, 250))
judge = scripted(
    "judge",
    fast={
        DAMAGED: [Turn(text=_json(DECISION_1042_FAST))],
        LATE: [Turn(text=_json(DECISION_1007))],
    },
    reasoning={
        DAMAGED: [Turn(text=_json(DECISION_1042), reasoning_tokens=900)],
        LATE: [Turn(text=_json(DECISION_1007), reasoning_tokens=300)],
    },
)
_replies = {
    # matched on the decision in the writer's request: the reply follows the amount
    '"amount_usd": 398.0': [
        Turn(text="We're sorry the espresso machine arrived damaged: we'll refund $398.00.")
    ],
    '"amount_usd": 349.0': [
        Turn(text="We're sorry the espresso machine arrived damaged: we'll refund $349.00.")
    ],
    '"amount_usd": 4.9': [
        Turn(text="Sorry your order is late: we'll refund the $4.90 shipping today.")
    ],
}
writer = scripted("writer", fast=_replies, reasoning=thinking(_replies, 300))


@guardrail(on_fail="refuse", refusal="A support agent will review your case and reply.")
def amounts_are_facts(candidate: str, context: Mapping[str, Any] | None) -> bool | str:
    """Every dollar amount in the reply is the decided refund, and that is an item's
    price or a shipping fee found in the facts — never a made-up figure."""
    results = (context or {}).get("results", {})
    decided = float(results.get("decide", {}).get("amount_usd", -1))
    facts = json.dumps([results.get("order_facts"), results.get("policy_facts")])
    allowed = {decided} & {float(x) for x in re.findall(r"\d+\.\d+", facts)}
    allowed -= {float(t) for t in re.findall(r'"total_usd": (\d+\.\d+)', facts)}
    for amount in re.findall(r"\$(\d+(?:\.\d+)?)", candidate):
        if float(amount) not in allowed:
            return f"${amount} is not the decided refund of an item or a fee in the facts"
    return True


def record_refund(view: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
    """Record the decided refund in the shop, exactly once: the shop keeps the key."""
    decision = view["results"]["decide"]
    return shop.refund(  # type: ignore[no-any-return]
        shop_db(),
        decision["order_id"],
        decision["amount_usd"],
        decision["reason"],
        idempotency_key=context.idempotency_key,
    )


POLICY = Policy(
    grants=(Grant(holder="agent:order_clerk", scopes=frozenset({"orders:read"})),),
    run_budget_usd=1.00,
)

workflow = Workflow(
    name="order_dispute",
    objective="Settle the customer's order dispute fairly, within the shop's policies.",
    steps=(
        AgentStep(
            name="classify",
            agent=classifier,
            goal="Name the kind of dispute and the order.",
            tier="fast",
            effort="low",
            as_json=True,
            on_fail="escalate",
        ),
        Parallel(
            name="gather",
            steps=(
                AgentStep(
                    name="order_facts",
                    agent=order_clerk,
                    goal="Look the order up.",
                    tier="fast",
                    as_json=True,
                ),
                AgentStep(
                    name="policy_facts",
                    agent=policy_clerk,
                    goal="Find the policy that applies.",
                    tier="fast",
                ),
            ),
        ),
        AgentStep(
            name="decide",
            agent=judge,
            goal="Decide the remedy from the facts and the policy.",
            tier="reasoning",
            effort="high",
            as_json=True,
            budget_usd=0.25,
        ),
        AgentStep(name="draft", agent=writer, goal="Write the reply.", tier="fast"),
        Approval(
            name="approve",
            message=lambda view: (
                f"Refund ${view['results']['decide']['amount_usd']:.2f} "
                f"on order {view['results']['decide']['order_id']}?"
            ),
            when=lambda view: view["results"]["decide"]["amount_usd"] > 200,
        ),
        FunctionStep(
            name="record",
            fn=record_refund,
            side_effects=True,
            when=lambda view: view["results"]["decide"]["remedy"] == "refund",
        ),
    ),
    answer="draft",
    guardrails=(amounts_are_facts,),
    policy=POLICY,
)
