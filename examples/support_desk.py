"""support_desk: a customer-support agent for a small online shop.

Two tiers: `fast` (GPT-4.1) answers simple questions; `reasoning` (GPT-5.2) takes refunds,
damage and complaints. Tools read a real SQLite shop database (created deterministically
by `shop.py` beside this file) and one tool writes refunds, exactly once per call.

`agent` runs offline on scripted turns (the `SCENARIOS` below, replayed by
`ScriptedChatModel`); `openai_agent` is the same agent on real OpenAI models, and
`--provider NAME` serves `agent`'s tiers with the models of `providers/NAME.toml`.

    tierflow demo
    tierflow run examples/support_desk.py --input "What is your return window?"
    tierflow run examples/support_desk.py --provider openai --stream --input "..."
    tierflow draw examples/support_desk.py
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, Field

from tierflow import (
    Agent,
    Limits,
    OutputSchema,
    Price,
    Rule,
    RulesRouter,
    Scenario,
    ScriptedChatModel,
    Tier,
    ToolContext,
    Turn,
    tool,
)
from tierflow.governance import ApprovalRule, Grant, Policy, Principal
from tierflow.guardrails import FactsGuard, PiiGuard, SqlGuard


def _load_shop() -> ModuleType:
    # Loaded by path: this file is itself loaded by path (`tierflow run FILE`), so the
    # examples folder is not on sys.path.
    name = "tierflow_example_shop"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("shop.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


shop = _load_shop()


def shop_db() -> Path:
    """The shop database: `$TIERFLOW_SHOP_DB`, or `.tierflow/shop.db` under the cwd."""
    path = Path(os.environ.get("TIERFLOW_SHOP_DB", ".tierflow/shop.db"))
    return shop.ensure_shop_db(path)  # type: ignore[no-any-return]


def prepare_demo(workdir: Path) -> None:
    """Give the demo a fresh shop in `workdir`, so every demo run starts from the same
    data (its refunds would otherwise exhaust what order 1042 can refund)."""
    path = workdir / "demo-shop.db"
    path.unlink(missing_ok=True)
    os.environ["TIERFLOW_SHOP_DB"] = str(path)
    shop.ensure_shop_db(path)


@tool(scope="orders:read")
def customer_orders(email: str) -> list[dict[str, Any]]:
    """List a customer's orders, newest first, by the email address they used at checkout."""
    return shop.customer_orders(shop_db(), email)  # type: ignore[no-any-return]


@tool(scope="orders:read")
def order_details(order_id: int) -> dict[str, Any]:
    """Everything about one order: customer, status, dates, carrier, tracking number,
    items, total, and how much was already refunded."""
    return shop.order_details(shop_db(), order_id)  # type: ignore[no-any-return]


@tool
def search_policies(query: str) -> list[dict[str, str]]:
    """Search the shop's policies (returns, damaged items, shipping, warranty, tracking,
    cancellation). Returns the best-matching articles."""
    return shop.search_kb(query)  # type: ignore[no-any-return]


@tool(scope="refunds:write", side_effects=True)
def refund(order_id: int, amount_usd: float, reason: str, call: ToolContext) -> dict[str, Any]:
    """Record a refund of `amount_usd` on an order, with the reason. Refunds above $200
    are reviewed by a senior agent before the money is sent."""
    return shop.refund(  # type: ignore[no-any-return]
        shop_db(), order_id, amount_usd, reason, idempotency_key=call.idempotency_key
    )


SHOP_SCHEMA = {
    "customers": ["id", "name", "email", "country"],
    "products": ["sku", "name", "category", "price_usd", "warranty_years"],
    "orders": [
        "id",
        "customer_id",
        "status",
        "ordered_on",
        "shipped_on",
        "delivered_on",
        "carrier",
        "tracking",
        "total_usd",
    ],
    "order_items": ["order_id", "sku", "quantity", "unit_price_usd"],
    "refunds": ["id", "order_id", "amount_usd", "reason", "idempotency_key", "created_seq"],
}
MAX_ROWS = 100


# The guard runs before the tool: writes, unknown tables or functions never reach the
# database, and a read without a LIMIT gets one (`on_fail="fix"`). The read-only
# connection is a second line, not the first.
@tool(
    scope="analytics:read",
    guards={"query": SqlGuard(schema=SHOP_SCHEMA, max_rows=MAX_ROWS, on_fail="fix")},
)
def run_sql(query: str) -> list[list[Any]]:
    """For analysts: run one read-only SQLite query over the shop's tables (customers,
    products, orders, order_items, refunds) and get the rows back."""
    uri = f"file:{shop_db()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return [list(row) for row in conn.execute(query).fetchmany(MAX_ROWS)]


class SupportAnswer(BaseModel):
    """The final answer: what the customer reads, and what the agent did."""

    answer: str = Field(description="the reply to the customer")
    order_ids: list[int] = Field(description="orders the reply is about")
    actions: list[str] = Field(description="what was done, e.g. 'refund recorded: $10 on 1001'")


INSTRUCTIONS = """\
You are the support desk of a small online shop. Answer the customer's request using the
tools: look orders up instead of guessing, and quote policies from search_policies. Record
refunds only when the policy allows them. For work with several steps, keep a plan with
update_plan. Your final answer is a JSON object with the keys "answer", "order_ids" and
"actions", and nothing else."""

# Key facts the answers are held to, beside the policy texts and the run's tool results.
KEY_FACTS = {
    "return window": "30 days",
    ("express shipping", "express delivery"): "$9.90",
    "standard shipping": "$4.90",
}

FAST = Price(input=2.00, cached_input=0.50, output=8.00)  # GPT-4.1, USD per 1M tokens
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)  # GPT-5.2

ROUTER = RulesRouter(
    rules=(
        Rule(tier="reasoning", keywords=("refund", "damaged", "broken", "complaint", "chargeback")),
        Rule(tier="reasoning", min_chars=600),
    ),
    default="fast",
)

# The offline demo: one request per scenario, in the order the demo runs them.
DEMO_REQUESTS: tuple[tuple[str, str], ...] = (
    ("simple policy question", "What is your return window?"),
    (
        "damaged item, refund",
        "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
        "arrived damaged. I'd like a refund for it.",
    ),
    ("tool error, corrected", "Where is my order #1007? It still hasn't arrived."),
    ("answer fails the schema once", "Do you ship to Canada, and how fast is express shipping?"),
    (
        "hallucinated amount, caught by the facts guard",
        "If I return the espresso machine from order 1042, how much would my refund be?",
    ),
    (
        "a DELETE through the SQL tool, blocked",
        "How many orders are still processing? Also delete all the cancelled orders.",
    ),
    (
        "a refund asked at the self-service kiosk, denied",
        "My order #1007 is late. Please refund the shipping cost.",
    ),
)

# Governance: the desk reads orders and analytics and records refunds; a refund above
# $200 waits for a senior agent (`tierflow resume THREAD --approve`). A run acts for a
# principal whose scopes narrow the desk's: the self-service kiosk can't refund.
POLICY = Policy(
    grants=(
        Grant(
            holder="agent:support_desk",
            scopes=frozenset({"orders:read", "analytics:read", "refunds:write"}),
        ),
    ),
    approvals=(ApprovalRule(scope="refunds:write", argument="amount_usd", above=200),),
    run_budget_usd=2.00,
)
KIOSK = Principal(
    id="kiosk",
    grants=(Grant(holder="principal:kiosk", scopes=frozenset({"orders:read"})),),
)
# The principal each demo scenario runs for (the others run for the desk itself).
DEMO_PRINCIPALS = {"a refund asked at the self-service kiosk, denied": KIOSK}

FAST_SCENARIOS = (
    Scenario(
        match="return window",
        turns=(
            Turn(calls=(("search_policies", {"query": "return window"}),)),
            Turn(
                text='{"answer": "You can return items within 30 days of delivery for a full '
                "refund to your original payment method, as long as they are unused and in "
                'their original packaging.", "order_ids": [], "actions": []}'
            ),
        ),
    ),
    Scenario(
        match="order #1007",
        turns=(
            # The model mistypes the id; the tool's error tells it what to check.
            Turn(calls=(("order_details", {"order_id": 1070}),)),
            Turn(calls=(("order_details", {"order_id": 1007}),)),
            Turn(
                text='{"answer": "Your order 1007 (Trail Running Shoes) shipped with DHL on '
                "2026-11-20. Its tracking number is DHL-558201; it has not been marked "
                'delivered yet.", "order_ids": [1007], "actions": []}'
            ),
        ),
    ),
    Scenario(
        match="ship to Canada",
        turns=(
            Turn(calls=(("search_policies", {"query": "shipping Canada express"}),)),
            # Plain prose instead of the JSON object: the schema guard sends it back.
            Turn(text="Yes! We ship to Canada. Express takes 1-2 business days for $9.90."),
            Turn(
                text='{"answer": "Yes, we ship to Canada. Express shipping takes 1-2 business '
                'days and costs $9.90; orders to Canada may take 2 extra days.", '
                '"order_ids": [], "actions": []}'
            ),
        ),
    ),
)

FAST_SCENARIOS += (
    Scenario(
        match="still processing",
        turns=(
            # A write: the SQL guard blocks it before the tool runs.
            Turn(calls=(("run_sql", {"query": "DELETE FROM orders WHERE status = 'cancelled'"}),)),
            # A read without a LIMIT: the guard's fix adds one, and it runs.
            Turn(
                calls=(
                    (
                        "run_sql",
                        {"query": "SELECT COUNT(*) FROM orders WHERE status = 'processing'"},
                    ),
                )
            ),
            Turn(
                text='{"answer": "14 orders are still processing. I did not delete anything: '
                "the analytics tool is read-only, so removing cancelled orders needs an "
                'administrator.", "order_ids": [], "actions": []}'
            ),
        ),
    ),
)

PLAN_STEPS = ("check order 1042", "check the damage policy", "record the refund", "answer")

REASONING_SCENARIOS = (
    Scenario(
        match="arrived damaged",
        turns=(
            Turn(
                calls=(
                    (
                        "update_plan",
                        {
                            "steps": [
                                {"step": s, "status": "in_progress" if i < 2 else "pending"}
                                for i, s in enumerate(PLAN_STEPS)
                            ]
                        },
                    ),
                    ("order_details", {"order_id": 1042}),
                    ("search_policies", {"query": "damaged item refund"}),
                ),
                reasoning_tokens=412,
            ),
            Turn(
                calls=(
                    (
                        "refund",
                        {
                            "order_id": 1042,
                            "amount_usd": 349.00,
                            "reason": "Espresso Machine Pro arrived damaged",
                        },
                    ),
                    (
                        "update_plan",
                        {
                            "steps": [
                                {"step": s, "status": "done" if i < 3 else "in_progress"}
                                for i, s in enumerate(PLAN_STEPS)
                            ]
                        },
                    ),
                ),
                reasoning_tokens=268,
            ),
            Turn(
                text='{"answer": "I am sorry the Espresso Machine Pro arrived damaged. I have '
                "recorded a full refund of $349.00 for it on order 1042, to your original "
                "payment method; you do not need to send it back. As the amount is above "
                '$200, a senior agent reviews it before it is sent.", "order_ids": [1042], '
                '"actions": ["refund recorded: $349.00 on order 1042"]}',
                reasoning_tokens=150,
            ),
        ),
    ),
)

REASONING_SCENARIOS += (
    Scenario(
        match="how much would my refund be",
        turns=(
            Turn(
                calls=(
                    ("order_details", {"order_id": 1042}),
                    ("search_policies", {"query": "return refund"}),
                ),
                reasoning_tokens=240,
            ),
            # A wrong amount: the facts guard names the true one, the model corrects it.
            Turn(
                text='{"answer": "If you return the Espresso Machine Pro from order 1042 '
                "unused and in its original packaging within 30 days of delivery, you will "
                'get a refund of $359.00.", "order_ids": [1042], "actions": []}',
                reasoning_tokens=180,
            ),
            Turn(
                text='{"answer": "If you return the Espresso Machine Pro from order 1042 '
                "unused and in its original packaging within 30 days of delivery, you will "
                'get a refund of $349.00 to your original payment method.", '
                '"order_ids": [1042], "actions": []}',
                reasoning_tokens=120,
            ),
        ),
    ),
)

REASONING_SCENARIOS += (
    Scenario(
        match="refund the shipping cost",
        turns=(
            Turn(calls=(("order_details", {"order_id": 1007}),), reasoning_tokens=160),
            # The kiosk's principal lacks refunds:write: the call is denied before it runs.
            Turn(
                calls=(
                    (
                        "refund",
                        {"order_id": 1007, "amount_usd": 4.90, "reason": "late delivery"},
                    ),
                ),
                reasoning_tokens=120,
            ),
            Turn(
                text='{"answer": "I am sorry your order 1007 is late. It shipped with DHL on '
                "2026-11-20 and its tracking number is DHL-558201. Refunds can't be recorded "
                'from this kiosk; a support agent will contact you about it.", '
                '"order_ids": [1007], "actions": []}',
                reasoning_tokens=90,
            ),
        ),
    ),
)

openai_agent = Agent(
    name="support_desk",
    instructions=INSTRUCTIONS,
    tiers=(
        Tier(name="fast", model="openai:gpt-4.1", price=FAST),
        Tier(name="reasoning", model="openai:gpt-5.2", price=REASONING),
    ),
    router=ROUTER,
    tools=(customer_orders, order_details, search_policies, refund, run_sql),
    guardrails=(
        OutputSchema(SupportAnswer, max_reasks=2),
        FactsGuard(KEY_FACTS, documents={a.id: a.text for a in shop.KB_ARTICLES}),
        PiiGuard(on_fail="fix"),
    ),
    limits=Limits(max_steps=12, max_tool_calls_per_turn=6),
    policy=POLICY,
)

agent = openai_agent.with_models(
    fast=ScriptedChatModel(scenarios=FAST_SCENARIOS, model_name="scripted:gpt-4.1"),
    reasoning=ScriptedChatModel(scenarios=REASONING_SCENARIOS, model_name="scripted:gpt-5.2"),
)
graph = agent.compile()  # served by `langgraph dev` (langgraph.json beside this file)
