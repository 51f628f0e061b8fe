"""`once=SameTransaction(...)`: a tool's writes and the record of its call, committed in
one transaction — so a crash anywhere leaves both or neither, and a retry finds the
record and returns the first result instead of writing again.

The record is a row of `tierflow_effects` (key, ok, content) in the database the tool
writes to: the run store (tierflow's connection, `?` placeholders on SQLite and
Postgres alike), or the tool's own connection (`SameTransaction(connect=...)`, sqlite3
or psycopg). Writers of one key are serialised: SQLite's `BEGIN IMMEDIATE`, Postgres's
transaction-scoped advisory lock on the key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierflow.nodes.tool_guards import Prepared
from tierflow.store import database
from tierflow.testing.faults import crash_point
from tierflow.tools.once import SameTransaction

TABLE = "tierflow_effects"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, "
    "content TEXT NOT NULL)"
)


class _Statements:
    """`execute(sql, params)` on a DB-API connection, its placeholders as `?` or `%s`."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self.conn = conn
        self.placeholder = placeholder

    def execute(self, sql: str, params: Any = (), /) -> Any:
        return self.conn.execute(sql, params)

    def ours(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)


def in_transaction(
    prepared: Prepared,
    kwargs: dict[str, Any],
    store: str | Path,
    render: Callable[[Any], str],
    redact: Callable[[str], str],
) -> tuple[bool, str]:
    """(True, the recorded content) if an earlier attempt committed; else run the tool in
    the transaction and return (False, what it returned, rendered)."""
    once = prepared.tool.once
    assert isinstance(once, SameTransaction)
    if once.connect is None:
        with database.using(store) as db, db.transaction(write=True) as tx:
            lock = "SELECT pg_advisory_xact_lock(hashtext(?))" if tx.dialect == "postgres" else ""
            return _once(prepared, kwargs, _Statements(tx, "?"), lock, render, redact)
    conn = once.connect(prepared.context)
    try:
        if isinstance(conn, sqlite3.Connection):
            conn.isolation_level = None  # explicit transactions only
            conn.execute("BEGIN IMMEDIATE")
            statements, lock = _Statements(conn, "?"), ""
        else:  # psycopg: a transaction starts with the first statement
            statements, lock = _Statements(conn, "%s"), "SELECT pg_advisory_xact_lock(hashtext(?))"
        try:
            outcome = _once(prepared, kwargs, statements, lock, render, redact)
            conn.execute("COMMIT") if isinstance(conn, sqlite3.Connection) else conn.commit()
        except BaseException:
            conn.execute("ROLLBACK") if isinstance(conn, sqlite3.Connection) else conn.rollback()
            raise
        return outcome
    finally:
        conn.close()


def _once(  # noqa: PLR0917 — one private step of `in_transaction`
    prepared: Prepared,
    kwargs: dict[str, Any],
    statements: _Statements,
    lock: str,
    render: Callable[[Any], str],
    redact: Callable[[str], str],
) -> tuple[bool, str]:
    key = prepared.context.idempotency_key
    if lock:
        statements.execute(statements.ours(lock), (key,))
    statements.execute(CREATE)
    row = statements.execute(
        statements.ours(f"SELECT content FROM {TABLE} WHERE key = ?"), (key,)
    ).fetchone()
    if row is not None:
        return True, str(row[0])
    name = prepared.tool.injected.transaction
    assert name is not None
    value = prepared.tool.fn(**{**kwargs, name: statements})
    content = render(value)
    crash_point("tool.in_transaction")  # the tool's writes done, nothing committed yet
    statements.execute(
        statements.ours(f"INSERT INTO {TABLE} (key, ok, content) VALUES (?, 1, ?)"),
        (key, redact(content)),
    )
    return False, content
