"""Side-effecting calls within one process: attempt numbers, reconcile checks, a tool's
writes and its record in one transaction, retries without a policy. (Kills between the
effect and its record: tests/test_exactly_once_kills.py.)"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage

from tierflow import SpecError, ToolContext, Turn, tool
from tierflow.errors import TransientError
from tierflow.foundation.retry import RetryPolicy
from tierflow.store import open_sqlite
from tierflow.tools import Reconcile, SameTransaction, Transaction, idempotency_headers

REQUEST = {"messages": [HumanMessage("refund order 7")]}
NO_WAIT = RetryPolicy(max_retries=2, backoff_s=0, max_backoff_s=0)


def fresh_thread() -> Any:
    """A thread of its own: without a tierflow store, side effects are recorded in the
    process's memory store, which every test of the process shares."""
    return thread(f"once-{uuid.uuid4().hex}")


def tool_messages(values: Mapping[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


def refund_turns(name: str) -> list[Turn]:
    return [Turn(calls=((name, {"order_id": 7}),)), Turn(text="done")]


class Bank:
    """A target system: refunds by order, each refund once (a second is refused)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS refunds (order_id INTEGER UNIQUE, key TEXT)")

    def refund(self, order_id: int, key: str) -> str:
        with sqlite3.connect(self.path) as conn:
            try:
                conn.execute("INSERT INTO refunds VALUES (?, ?)", (order_id, key))
            except sqlite3.IntegrityError:
                raise RuntimeError(f"order {order_id} was already refunded") from None
        return f"refund of order {order_id} issued"

    def refunds(self) -> list[tuple[int, str]]:
        with sqlite3.connect(self.path) as conn:
            return list(conn.execute("SELECT order_id, key FROM refunds"))


def test_a_retry_after_an_unknown_outcome_is_numbered_and_reconciled(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    bank = Bank(tmp_path / "bank.db")
    attempts: list[int] = []
    checks: list[str] = []

    def already_refunded(key: str, arguments: Mapping[str, Any]) -> str | None:
        checks.append(key)
        done = [order for order, stored in bank.refunds() if stored == key]
        return f"refund of order {done[0]} issued" if done else None

    @tool(side_effects=True, once=Reconcile(already_refunded), retry=NO_WAIT)
    def refund(order_id: int, context: ToolContext) -> str:
        """Refund an order."""
        attempts.append(context.attempt)
        result = bank.refund(order_id, context.idempotency_key)
        if context.attempt == 1:  # the refund went through; the reply was lost
            raise TransientError("connection reset after the write")
        return result

    values = (
        scripted_agent(refund_turns("refund"), tools=(refund,))
        .graph()
        .invoke(REQUEST, fresh_thread())
    )
    # Attempt 1 wrote and failed transiently; before attempt 2 the check found the
    # refund, so the tool did not run again, and the model read the first result.
    assert attempts == [1]
    assert len(checks) == 1 and bank.refunds() == [(7, checks[0])]
    [message] = tool_messages(values)
    assert (message.status, message.content) == ("success", "refund of order 7 issued")


def test_without_a_check_the_retry_reaches_the_target_with_the_same_key(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    seen: list[tuple[int, str, dict[str, str]]] = []

    @tool(side_effects=True, retry=NO_WAIT)
    def refund(order_id: int, context: ToolContext) -> str:
        """Refund an order."""
        seen.append((context.attempt, context.idempotency_key, idempotency_headers(context)))
        if not context.is_retry:
            raise TransientError("timed out upstream")
        return "ok"

    scripted_agent(refund_turns("refund"), tools=(refund,)).graph().invoke(REQUEST, fresh_thread())
    (first, key1, headers1), (second, key2, headers2) = seen
    assert (first, second) == (1, 2) and key1 == key2
    assert headers1 == headers2 == {"Idempotency-Key": key1}


def test_a_transient_error_without_any_retry_policy_is_not_retried(
    scripted_agent: Callable[..., Scripted],
) -> None:
    attempts: list[int] = []

    @tool
    def lookup(order_id: int, context: ToolContext) -> str:
        """Look an order up."""
        attempts.append(context.attempt)
        raise TransientError("busy")

    values = (
        scripted_agent(refund_turns("lookup"), tools=(lookup,))
        .graph()
        .invoke(REQUEST, fresh_thread())
    )
    assert attempts == [1]
    assert tool_messages(values)[0].status == "error"


# --- the tool's writes and its record in one transaction ---------------------------------


def same_transaction_agent(
    scripted_agent: Callable[..., Scripted], once: SameTransaction, fail_first: bool
) -> tuple[Scripted, list[int]]:
    attempts: list[int] = []

    @tool(side_effects=True, once=once, retry=NO_WAIT)
    def refund(order_id: int, tx: Transaction, context: ToolContext) -> dict[str, Any]:
        """Refund an order."""
        attempts.append(context.attempt)
        tx.execute("CREATE TABLE IF NOT EXISTS refunds (order_id INTEGER UNIQUE)")
        tx.execute("INSERT INTO refunds VALUES (?)", (order_id,))
        if fail_first and context.attempt == 1:
            raise TransientError("lost the connection before commit")
        return {"refunded": order_id}

    return scripted_agent(refund_turns("refund"), tools=(refund,)), attempts


@pytest.mark.parametrize("own_connection", [False, True], ids=["run_store", "own_database"])
def test_a_failed_attempt_rolls_its_writes_back(
    scripted_agent: Callable[..., Scripted], tmp_path: Path, own_connection: bool
) -> None:
    store, bank = tmp_path / "runs.db", tmp_path / "bank.db"

    def connect(context: ToolContext) -> sqlite3.Connection:
        return sqlite3.connect(bank)

    once = SameTransaction(connect) if own_connection else SameTransaction()
    scripted, attempts = same_transaction_agent(scripted_agent, once, fail_first=True)
    with open_sqlite(store) as saver:
        values = scripted.agent.compile(checkpointer=saver).invoke(REQUEST, thread())
    assert attempts == [1, 2]
    [message] = tool_messages(values)
    assert message.content == '{"refunded": 7}'
    target = bank if own_connection else store
    with sqlite3.connect(target) as conn:
        assert list(conn.execute("SELECT order_id FROM refunds")) == [(7,)]  # once, not twice
        [(key, content)] = conn.execute("SELECT key, content FROM tierflow_effects")
    assert content == '{"refunded": 7}' and key.startswith("tf-")


def test_a_recorded_transaction_is_returned_not_run_again(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    """What a retry after a crash between the commit and tierflow's side-effect record
    finds: the transaction's record, and the tool does not write again."""
    scripted, attempts = same_transaction_agent(scripted_agent, SameTransaction(), False)
    store = tmp_path / "runs.db"
    with open_sqlite(store) as saver:
        graph = scripted.agent.compile(checkpointer=saver)
        graph.invoke(REQUEST, thread())
        with sqlite3.connect(store) as conn:  # forget the side-effect record only
            conn.execute("UPDATE side_effects SET state = 'started', ok = NULL, content = NULL")
        before_act = [h for h in graph.get_state_history(thread()) if h.next == ("act",)]
        values = graph.invoke(None, before_act[0].config)
    assert attempts == [1]
    assert tool_messages(values)[-1].content == '{"refunded": 7}'


def test_same_transaction_needs_a_transaction_parameter_and_a_sync_function() -> None:
    with pytest.raises(SpecError, match="needs a parameter annotated `Transaction`"):

        @tool(side_effects=True, once=SameTransaction())
        def refund(order_id: int) -> str:
            """Refund."""
            return "ok"

    with pytest.raises(SpecError, match="is for a tool with side_effects=True"):

        @tool(once=Reconcile(lambda key, arguments: None))
        def lookup(order_id: int) -> str:
            """Look up."""
            return "ok"

    with pytest.raises(SpecError, match="needs a sync function"):

        @tool(side_effects=True, once=SameTransaction())
        async def arefund(order_id: int, tx: Transaction) -> str:
            """Refund."""
            return "ok"


def test_a_transactions_record_is_redacted(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    """docs/tools.md: recorded results are redacted like every record — the
    `tierflow_effects` row too, and the model reads the recorded result, as a replay
    would."""
    card = "4111 1111 1111 1111"

    @tool(side_effects=True, once=SameTransaction())
    def charge(order_id: int, tx: Transaction) -> str:
        """Charge a card."""
        tx.execute("CREATE TABLE IF NOT EXISTS charges (order_id INTEGER)")
        tx.execute("INSERT INTO charges VALUES (?)", (order_id,))
        return f"charged card {card}"

    store = tmp_path / "runs.db"
    with open_sqlite(store) as saver:
        graph = scripted_agent(refund_turns("charge"), tools=(charge,)).agent.compile(saver)
        values = graph.invoke(REQUEST, fresh_thread())
    assert tool_messages(values)[0].content == "charged card [REDACTED:card]"
    with sqlite3.connect(store) as conn:
        [(content,)] = conn.execute("SELECT content FROM tierflow_effects")
    assert card not in content and "[REDACTED:card]" in content
