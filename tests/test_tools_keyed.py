"""`KeyedResults`: a keyed tool's results in a table of its own database, on SQLite and
Postgres — found by a later attempt, forgotten with a rolled-back write, and a racing
duplicate refused rather than doubled."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from checkpoint_stores import fresh_database
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage

from tierflow import ToolContext, Turn, tool
from tierflow.errors import TransientError
from tierflow.foundation.retry import RetryPolicy
from tierflow.tools import KeyedResults

Connect = Callable[[], Any]  # a new connection, its transaction not yet begun
REFUNDS = "CREATE TABLE IF NOT EXISTS refunds (order_id INTEGER NOT NULL)"


@pytest.fixture(params=["sqlite", "postgres"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connect]:
    """New connections to one fresh database, each with the driver's own transactions
    (sqlite3 begins one before a write, psycopg before the first statement)."""
    if request.param == "sqlite":
        path = tmp_path / "bank.db"
        yield lambda: sqlite3.connect(path, timeout=0.1)
    else:
        with fresh_database() as url:
            yield lambda: psycopg.connect(url)


def placeholder(conn: Any) -> str:
    return "?" if isinstance(conn, sqlite3.Connection) else "%s"


def refund(conn: Any, order_id: int) -> dict[str, Any]:
    """The tool's write: a refund row."""
    conn.cursor().execute(REFUNDS)
    conn.cursor().execute(f"INSERT INTO refunds VALUES ({placeholder(conn)})", (order_id,))
    return {"refunded": order_id, "amount_usd": 25.0, "note": "late — sorry"}


def refunds(connect: Connect) -> list[int]:
    with closing(connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(REFUNDS)
        cursor.execute("SELECT order_id FROM refunds")
        return [row[0] for row in cursor.fetchall()]


def test_a_later_attempt_finds_the_first_result(connect: Connect) -> None:
    with closing(connect()) as conn:
        results = KeyedResults(conn)
        assert results.first("tf-1") is None
        done = refund(conn, 7)
        results.remember("tf-1", done)
        conn.commit()
    with closing(connect()) as conn:  # another attempt, another connection
        assert KeyedResults(conn).first("tf-1") == done
        assert KeyedResults(conn).first("tf-2") is None
    assert refunds(connect) == [7]


def test_a_rolled_back_write_leaves_no_result(connect: Connect) -> None:
    with closing(connect()) as conn:
        results = KeyedResults(conn, "refund_keys")
        results.remember("tf-1", refund(conn, 7))
        conn.rollback()  # the write failed: neither it nor its result stays
    with closing(connect()) as conn:
        assert KeyedResults(conn, "refund_keys").first("tf-1") is None
    assert refunds(connect) == []


def test_a_racing_duplicate_fails_rather_than_doubles(connect: Connect) -> None:
    with closing(connect()) as setup:  # the table exists before either attempt
        KeyedResults(setup).first("tf-0")
        setup.commit()
    with closing(connect()) as first, closing(connect()) as second:
        ours, theirs = KeyedResults(first, create=False), KeyedResults(second, create=False)
        assert ours.first("tf-1") is None and theirs.first("tf-1") is None  # both pass
        ours.remember("tf-1", refund(first, 7))
        first.commit()
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
            theirs.remember("tf-1", refund(second, 7))
        second.rollback()
    assert refunds(connect) == [7]


def test_what_it_refuses(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "bank.db")) as conn:
        with pytest.raises(ValueError, match="not a plain SQL name"):
            KeyedResults(conn, 'keys"; DROP TABLE refunds; --')
        with pytest.raises(ValueError, match="None result"):
            KeyedResults(conn).remember("tf-1", None)
    with pytest.raises(TypeError, match="needs a sqlite3 or psycopg connection, not dict"):
        KeyedResults({})


def test_a_keyed_tool_retried_after_its_commit_returns_the_first_result(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    """The reply of attempt 1 is lost after its commit; attempt 2 (same key) finds the
    stored result, does not refund again, and the model reads the first result."""
    bank = tmp_path / "bank.db"
    attempts: list[int] = []

    @tool(side_effects=True, retry=RetryPolicy(max_retries=1, backoff_s=0, max_backoff_s=0))
    def refund_order(order_id: int, context: ToolContext) -> dict[str, Any]:
        """Refund an order."""
        attempts.append(context.attempt)
        with closing(sqlite3.connect(bank)) as conn, conn:
            results = KeyedResults(conn)
            done = results.first(context.idempotency_key)
            if done is None:
                done = {**refund(conn, order_id), "attempt": context.attempt}
                results.remember(context.idempotency_key, done)
        if context.attempt == 1:
            raise TransientError("connection reset after the commit")
        return dict(done)

    turns = [Turn(calls=(("refund_order", {"order_id": 7}),)), Turn(text="done")]
    graph = scripted_agent(turns, tools=(refund_order,)).graph()
    # A thread of its own: on InMemorySaver, side effects are recorded in the process's
    # memory store, which every test of the (xdist worker) process shares.
    request = {"messages": [HumanMessage("refund order 7")]}
    values = graph.invoke(request, thread(f"keyed-{uuid.uuid4().hex}"))
    assert attempts == [1, 2]
    assert refunds(lambda: sqlite3.connect(bank)) == [7]
    [message] = [m for m in values["messages"] if isinstance(m, ToolMessage)]
    assert message.status == "success"
    assert message.content == (
        '{"refunded": 7, "amount_usd": 25.0, "note": "late — sorry", "attempt": 1}'
    )
