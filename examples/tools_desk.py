"""tools_desk: one agent whose tools come from four places, all governed, run offline.

- a Python function (`@tool`): `tracking_link`;
- JSON-schema tools (`Tool.from_schema`), as an internal API describes itself:
  `shipping_quote` (the rates service) and `open_ticket` (the ticket system: a write,
  exactly once per call through `KeyedResults`, on a run resource it `Needs`);
- a LangChain tool (`from_langchain`): `search_policies`;
- the example shop's MCP server (`mcp_shop_server.py`, over stdio): `order_status`, and
  `issue_refund`, which gets the call's idempotency key in its `idempotency_key` argument
  (hidden from the model), so a retried refund is not made twice.

The policy grants the desk its scopes, holds a refund above $100 for a human
(`tierflow resume THREAD --approve`) and caps a run's cost. The models are scripted
(`SCENARIOS`), so it runs with no key:

    tierflow run examples/tools_desk.py --input "Where is my order 1042?"
    tierflow run examples/tools_desk.py --input "How much is express shipping to Canada?"
    tierflow run examples/tools_desk.py --input "A cup from order 1042 arrived damaged."
    tierflow run examples/tools_desk.py --input "Please refund the espresso machine."
    tierflow run examples/tools_desk.py --principal kiosk --scope orders:read \\
        --input "My order 1007 is late: refund the shipping."

The shop is `$TIERFLOW_SHOP_DB`, else `.tierflow/shop.db`; tickets go to `tickets.db`
beside it.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from langchain_core.tools import tool as langchain_tool

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Tool, ToolContext, Turn, tool
from tierflow.governance import ApprovalRule, Grant, Policy
from tierflow.tools import KeyedResults, Needs, from_langchain, mcp_tools

HERE = Path(__file__).resolve().parent


def _load_shop() -> ModuleType:
    # By path: this file is itself loaded by path (`tierflow run FILE`).
    name = "tierflow_example_shop"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


shop = _load_shop()
SHOP_DB = Path(os.environ.get("TIERFLOW_SHOP_DB", ".tierflow/shop.db")).resolve()


# --- a Python function ------------------------------------------------------------------


@tool(scope="orders:read")
def tracking_link(carrier: str, tracking: str) -> str:
    """The page where the customer follows a parcel, by carrier and tracking number."""
    return f"https://track.example.com/{carrier.lower()}/{tracking}"


# --- JSON-schema tools: an internal API as it describes itself -----------------------------

QUOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "destination": {
            "type": "object",
            "description": "Where the parcel goes.",
            "properties": {
                "country": {
                    "type": "string",
                    "pattern": "^[A-Z]{2}$",
                    "description": "ISO 3166 two-letter code, e.g. CA",
                },
                "postcode": {"type": "string"},
            },
            "required": ["country"],
            "additionalProperties": False,
        },
        "speed": {"type": "string", "enum": ["standard", "express"]},
        "weight_kg": {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
    },
    "required": ["destination", "speed", "weight_kg"],
    "additionalProperties": False,
}
RATES = {"standard": (4.90, 3, 5), "express": (9.90, 1, 2)}  # price, business days
SHIPS_TO = {"US", "CA", "AT", "BE", "DE", "ES", "FR", "IE", "IT", "NL", "PT"}


def quote(request: dict[str, Any]) -> dict[str, Any]:
    """The rates service: what the model sent, checked against `QUOTE_SCHEMA`."""
    country = request["destination"]["country"]
    if country not in SHIPS_TO:
        raise ValueError(f"we don't ship to {country}; we ship to the US, Canada and the EU")
    price, fastest, slowest = RATES[request["speed"]]
    extra = 0 if country == "US" else 2
    weight = max(0.0, request["weight_kg"] - 5) * 1.20  # above 5 kg, $1.20 a kg
    return {
        "speed": request["speed"],
        "price_usd": round(price + weight, 2),
        "business_days": f"{fastest + extra}-{slowest + extra}",
    }


shipping_quote = Tool.from_schema(
    "shipping_quote",
    "A shipping quote: price and business days for a parcel's destination, speed and weight.",
    QUOTE_SCHEMA,
    quote,
    scope="shipping:read",
)

TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "topic": {"type": "string", "enum": ["damaged", "late", "other"]},
        "summary": {"type": "string", "minLength": 10},
    },
    "required": ["order_id", "topic", "summary"],
    "additionalProperties": False,
}


class TicketDesk:
    """The ticket system: a SQLite file, one connection per call (calls run at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, ticket: dict[str, Any], key: str) -> dict[str, Any]:
        """Open `ticket`, once per idempotency `key`: a retry gets the first result."""
        with closing(sqlite3.connect(self.path)) as conn, conn:  # commits on success
            conn.execute("BEGIN IMMEDIATE")  # a racing attempt waits for this one
            results = KeyedResults(conn)
            earlier: dict[str, Any] | None = results.first(key)
            if earlier is not None:
                return earlier
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, "
                "order_id INTEGER NOT NULL, topic TEXT NOT NULL, summary TEXT NOT NULL)"
            )
            row = conn.execute(
                "INSERT INTO tickets (order_id, topic, summary) VALUES (?, ?, ?)",
                (ticket["order_id"], ticket["topic"], ticket["summary"]),
            )
            opened = {"ticket_id": row.lastrowid, **ticket}
            results.remember(key, opened)
            return opened


def open_desk() -> TicketDesk:
    """The run resource `tickets`: built when a run (or a resume) starts."""
    SHOP_DB.parent.mkdir(parents=True, exist_ok=True)
    return TicketDesk(SHOP_DB.with_name("tickets.db"))


def file_ticket(
    ticket: dict[str, Any], tickets: Annotated[TicketDesk, Needs("tickets")], call: ToolContext
) -> dict[str, Any]:
    return tickets.open(ticket, call.idempotency_key)


open_ticket = Tool.from_schema(
    "open_ticket",
    "Open a ticket for the support team about an order (damaged, late, other).",
    TICKET_SCHEMA,
    file_ticket,
    scope="tickets:write",
    side_effects=True,
)


# --- a LangChain tool -----------------------------------------------------------------------


@langchain_tool
def search_policies(query: Annotated[str, "words to look for, e.g. 'damaged item'"]) -> str:
    """Search the shop's policies (returns, damaged items, shipping, warranty)."""
    return "\n\n".join(f"{a['title']}: {a['text']}" for a in shop.search_kb(query))


# --- the MCP server's tools (stdio: the server starts for each session) ----------------------

SHOP_SERVER = {
    "transport": "stdio",
    "command": sys.executable,
    "args": [str(HERE / "mcp_shop_server.py"), "--db", str(SHOP_DB)],
}
shop_tools = mcp_tools(
    {"shop": SHOP_SERVER},
    {
        "order_status": {"scope": "orders:read", "timeout_s": 60},
        "issue_refund": {
            "scope": "refunds:write",
            "side_effects": True,
            "key_argument": "idempotency_key",
            "timeout_s": 60,
        },
    },
)

# --- the agent ------------------------------------------------------------------------------

POLICY = Policy(
    grants=(
        Grant(
            holder="agent:tools_desk",
            scopes=frozenset({"orders:read", "refunds:write", "shipping:read", "tickets:write"}),
        ),
    ),
    approvals=(ApprovalRule(scope="refunds:write", argument="amount", above=100),),
    run_budget_usd=1.00,
)

DAMAGED = "A cup from the Ceramic Cup Set arrived broken; customer sent a photo."
SCENARIOS = (
    Scenario(
        match="where is my order 1042",
        turns=(
            Turn(calls=(("order_status", {"order_id": 1042}),)),
            Turn(calls=(("tracking_link", {"carrier": "UPS", "tracking": "1Z-4471-0932"}),)),
            Turn(
                text="Order 1042 was delivered by UPS (tracking 1Z-4471-0932): "
                "https://track.example.com/ups/1Z-4471-0932"
            ),
        ),
    ),
    Scenario(
        match="express shipping to canada",
        turns=(
            # "Canada" breaks the schema's pattern: the model reads why and fixes it.
            Turn(
                calls=(
                    (
                        "shipping_quote",
                        {"destination": {"country": "Canada"}, "speed": "express", "weight_kg": 2},
                    ),
                )
            ),
            Turn(
                calls=(
                    (
                        "shipping_quote",
                        {"destination": {"country": "CA"}, "speed": "express", "weight_kg": 2},
                    ),
                )
            ),
            Turn(text="Express shipping to Canada costs $9.90 and takes 3-4 business days."),
        ),
    ),
    Scenario(
        match="arrived damaged",
        turns=(
            Turn(
                calls=(
                    ("search_policies", {"query": "damaged item"}),
                    ("order_status", {"order_id": 1042}),
                )
            ),
            Turn(
                calls=(
                    ("issue_refund", {"order_id": 1042, "amount": 24.5, "reason": DAMAGED}),
                    ("open_ticket", {"order_id": 1042, "topic": "damaged", "summary": DAMAGED}),
                )
            ),
            Turn(text="I refunded $24.50 for the broken cup and opened a ticket for our team."),
        ),
    ),
    Scenario(
        match="refund the espresso machine",
        turns=(
            Turn(
                calls=(
                    (
                        "issue_refund",
                        {"order_id": 1042, "amount": 349.0, "reason": "customer return"},
                    ),
                )
            ),
            Turn(text="The $349.00 refund for the espresso machine is recorded."),
        ),
    ),
    Scenario(
        match="refund the shipping",
        turns=(
            Turn(calls=(("issue_refund", {"order_id": 1007, "amount": 4.9, "reason": "late"}),)),
            Turn(text="Refunds can't be made from here; a support agent will contact you."),
        ),
    ),
)
SCRIPT = ScriptedChatModel(scenarios=SCENARIOS, model_name="scripted:tools-desk")
PRICE = Price(input=2.00, cached_input=0.50, output=8.00)

agent = Agent(
    name="tools_desk",
    instructions="You are the shop's support desk. Use the tools; never guess an order's state.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(
        tracking_link,
        shipping_quote,
        open_ticket,
        from_langchain(search_policies),
        *shop_tools,
    ),
    policy=POLICY,
    resources={"tickets": open_desk},
)
