"""An agent whose refund tools write to a bank, one tool per way of happening once
(`tierflow.tools.once`) — the subject of the exactly-once kill campaign
(tests/test_exactly_once_kills.py, bench/exactly_once.py).

The bank is a SQLite file (`$ONCE_BANK`) of its own, except for `refund_same_tx_store`,
whose bank table lives in the run store (SQLite or Postgres). It refuses a second refund
of an order ("order N was already refunded"): an attempt that runs again after its
effect shows as that error. `ONCE_BANK_LENIENT=1` turns the refusal off, so a repeated
effect shows as a second refund. A refund's receipt names the attempt that made it.

- `refund_plain` ignores the key: at least once.
- `refund_keyed` keeps its result by key in the bank (`KeyedResults`), in the refund's
  own transaction.
- `refund_reconciled` stores the key with the refund; its `Reconcile` check looks it up.
- `refund_same_tx_store` writes in the run store, in tierflow's transaction.
- `refund_same_tx_own` writes in the bank, in a transaction on the bank's connection.

Every run of a tool function appends what it returned or raised to `$ONCE_BANK_LOG`
(JSON lines). `agent` has a policy; `bare` has none. Ask "refund order 1042 with TOOL".

`python once_bank.py [--bare] TARGET THREAD [REQUEST]` runs (with REQUEST) or resumes
(without) the thread with `ainvoke` on the run store TARGET, and prints its status and
answer as JSON: the async path, as a user's own program would take it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from tierflow import (
    Agent,
    Price,
    RunContext,
    Scenario,
    ScriptedChatModel,
    Tier,
    ToolContext,
    Turn,
    tool,
)
from tierflow import store as run_store
from tierflow.governance import Grant, Policy
from tierflow.tools import KeyedResults
from tierflow.tools.arguments import Transaction
from tierflow.tools.once import Reconcile, SameTransaction

ORDER, AMOUNT_USD = 1042, 25.0
SCOPE = "refunds:write"
TOOLS = (
    "refund_plain",
    "refund_keyed",
    "refund_reconciled",
    "refund_same_tx_store",
    "refund_same_tx_own",
)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bank_refunds (order_id INTEGER NOT NULL, "
    "amount_cents INTEGER NOT NULL, attempt INTEGER NOT NULL, idempotency_key TEXT)"
)
Execute = Callable[..., Any]  # `execute(sql, params)` with `?` placeholders → a cursor


class AlreadyRefunded(RuntimeError):
    """The bank's refusal of a second refund of one order."""


def request_for(tool_name: str) -> str:
    return f"Please refund order {ORDER} with {tool_name}."


# -- the bank ------------------------------------------------------------------------------


def receipt(order_id: int, amount_cents: int, attempt: int) -> dict[str, Any]:
    """What a refund returns; a reconcile check rebuilds it from the bank's row."""
    return {
        "refund": f"R-{order_id}-{attempt}",
        "order_id": order_id,
        "amount_usd": amount_cents / 100,
        "attempt": attempt,
    }


def bank_refund(
    execute: Execute, order_id: int, amount_usd: float, *, attempt: int, key: str | None = None
) -> dict[str, Any]:
    """Refund an order in the bank that `execute` writes to (not committed here)."""
    execute(SCHEMA)
    earlier = execute("SELECT attempt FROM bank_refunds WHERE order_id = ?", (order_id,))
    if os.environ.get("ONCE_BANK_LENIENT") != "1" and earlier.fetchone() is not None:
        raise AlreadyRefunded(f"order {order_id} was already refunded")
    cents = round(amount_usd * 100)
    execute(
        "INSERT INTO bank_refunds (order_id, amount_cents, attempt, idempotency_key) "
        "VALUES (?, ?, ?, ?)",
        (order_id, cents, attempt, key),
    )
    return receipt(order_id, cents, attempt)


def bank_refunds(execute: Execute) -> list[dict[str, Any]]:
    """Every refund in the bank that `execute` reads, as receipts, oldest first."""
    execute(SCHEMA)
    rows = execute("SELECT order_id, amount_cents, attempt FROM bank_refunds").fetchall()
    return [receipt(int(o), int(c), int(a)) for o, c, a in rows]


def open_bank(context: ToolContext | None = None) -> sqlite3.Connection:
    """A connection to the bank file (`SameTransaction(connect=...)` passes the call)."""
    return sqlite3.connect(os.environ["ONCE_BANK"], timeout=30)


def _logged(tool_name: str, call: ToolContext, work: Callable[[], Any]) -> Any:
    """`work()`, its result or error appended to the log with the attempt number."""
    entry: dict[str, Any] = {"tool": tool_name, "attempt": call.attempt}
    try:
        entry["result"] = work()
    except Exception as error:
        entry["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        with Path(os.environ["ONCE_BANK_LOG"]).open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
    return entry["result"]


# -- the tools -----------------------------------------------------------------------------


@tool(scope=SCOPE, side_effects=True)
def refund_plain(order_id: int, amount_usd: float, call: ToolContext) -> dict[str, Any]:
    """Refund an order (the idempotency key is ignored)."""

    def work() -> dict[str, Any]:
        with closing(open_bank()) as conn, conn:
            return bank_refund(conn.execute, order_id, amount_usd, attempt=call.attempt)

    return dict(_logged("refund_plain", call, work))


@tool(scope=SCOPE, side_effects=True)
def refund_keyed(order_id: int, amount_usd: float, call: ToolContext) -> dict[str, Any]:
    """Refund an order; the bank keeps the result by the call's key."""

    def work() -> dict[str, Any]:
        with closing(open_bank()) as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            results = KeyedResults(conn)
            earlier = results.first(call.idempotency_key)
            if earlier is not None:
                return dict(earlier)
            done = bank_refund(conn.execute, order_id, amount_usd, attempt=call.attempt)
            results.remember(call.idempotency_key, done)
            return done

    return dict(_logged("refund_keyed", call, work))


def refunded_with_key(key: str, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    """The receipt of the refund made with `key`, if the bank has one."""
    with closing(open_bank()) as conn:
        conn.execute(SCHEMA)
        row = conn.execute(
            "SELECT order_id, amount_cents, attempt FROM bank_refunds WHERE idempotency_key = ?",
            (key,),
        ).fetchone()
    return None if row is None else receipt(*row)


@tool(scope=SCOPE, side_effects=True, once=Reconcile(refunded_with_key))
def refund_reconciled(order_id: int, amount_usd: float, call: ToolContext) -> dict[str, Any]:
    """Refund an order; the refund carries the call's key."""

    def work() -> dict[str, Any]:
        with closing(open_bank()) as conn, conn:
            key = call.idempotency_key
            return bank_refund(conn.execute, order_id, amount_usd, attempt=call.attempt, key=key)

    return dict(_logged("refund_reconciled", call, work))


@tool(scope=SCOPE, side_effects=True, once=SameTransaction())
def refund_same_tx_store(
    order_id: int, amount_usd: float, tx: Transaction, call: ToolContext
) -> dict[str, Any]:
    """Refund an order in the run store's bank table."""

    def work() -> dict[str, Any]:
        return bank_refund(tx.execute, order_id, amount_usd, attempt=call.attempt)

    return dict(_logged("refund_same_tx_store", call, work))


@tool(scope=SCOPE, side_effects=True, once=SameTransaction(connect=open_bank))
def refund_same_tx_own(
    order_id: int, amount_usd: float, tx: Transaction, call: ToolContext
) -> dict[str, Any]:
    """Refund an order in the bank, on the bank's own connection."""

    def work() -> dict[str, Any]:
        return bank_refund(tx.execute, order_id, amount_usd, attempt=call.attempt)

    return dict(_logged("refund_same_tx_own", call, work))


# -- the agents ----------------------------------------------------------------------------

SCRIPT = ScriptedChatModel(
    scenarios=tuple(
        Scenario(
            match=f"with {name}.",
            turns=(
                Turn(calls=((name, {"order_id": ORDER, "amount_usd": AMOUNT_USD}),)),
                Turn(text=f"Refund of order {ORDER} handled."),
            ),
        )
        for name in TOOLS
    )
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

bare = Agent(
    name="once_bank",
    instructions="Refund orders.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(
        refund_plain,
        refund_keyed,
        refund_reconciled,
        refund_same_tx_store,
        refund_same_tx_own,
    ),
)
agent = bare.model_copy(
    update={"policy": Policy(grants=(Grant(holder="agent:once_bank", scopes=frozenset({SCOPE})),))}
)


# -- the async path ------------------------------------------------------------------------


async def adrive(chosen: Agent, target: str, thread: str, request: str | None) -> dict[str, Any]:
    """Run `request` on `thread` (None: resume it) with `ainvoke`; its status and answer."""
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    payload = None if request is None else {"messages": [HumanMessage(request)]}
    with run_store.open(target) as saver:
        graph = chosen.compile(checkpointer=saver)
        values = await graph.ainvoke(payload, config, context=RunContext(), durability="sync")
    return {"status": values.get("status"), "answer": values.get("answer")}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", action="store_true", help="the agent without a policy")
    parser.add_argument("target")
    parser.add_argument("thread")
    parser.add_argument("request", nargs="?")
    args = parser.parse_args(argv)
    chosen = bare if args.bare else agent
    print(json.dumps(asyncio.run(adrive(chosen, args.target, args.thread, args.request))))


if __name__ == "__main__":
    main()
