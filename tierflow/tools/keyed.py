"""A keyed tool's results in a SQL table of its own database: the "unique key" half of
exactly-once for a tool that writes to a database tierflow can't reach.

Inside the tool's own transaction, before the write, `first(key)` returns the result an
earlier attempt of the same call stored with the call's idempotency key (None: no
earlier attempt committed, so write); after the write, `remember(key, result)` stores it
in the same transaction. The key is the table's PRIMARY KEY, so of two attempts racing
past `first`, the second's `remember` fails and its transaction, write included, rolls
back: a duplicate fails rather than doubles.

    @tool(side_effects=True)
    def refund(order_id: int, context: ToolContext) -> dict[str, Any]:
        with closing(sqlite3.connect(BANK)) as conn, conn:  # commits on success
            results = KeyedResults(conn)
            earlier = results.first(context.idempotency_key)
            if earlier is not None:
                return earlier
            done = bank_refund(conn, order_id)
            results.remember(context.idempotency_key, done)
            return done

Works with sqlite3 and psycopg (or psycopg2) connections; the placeholders follow the
driver. Results are stored as JSON: a result must be JSON-serialisable and not None.
On SQLite, `BEGIN IMMEDIATE` before `first` makes a racing attempt wait for the first
one's commit instead of failing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

TABLE = "tierflow_keyed_results"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PSYCOPG = frozenset({"psycopg", "psycopg2"})


class KeyedResults:
    """The results stored by key in `table` of `connection`'s database (created on
    first use unless `create=False`; on Postgres, where two first uses at once can
    collide, create it beforehand). It never commits: the caller's transaction does."""

    def __init__(self, connection: Any, table: str = TABLE, *, create: bool = True) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table {table!r} is not a plain SQL name (letters, digits, _)")
        self.connection = connection
        self.placeholder = _placeholder(connection)
        self.table = f'"{table}"'
        self._create = create

    def first(self, key: str) -> Any | None:
        """The result stored with `key` by an earlier attempt, or None."""
        row = self._execute(f"SELECT result FROM {self.table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def remember(self, key: str, result: Any) -> None:
        """Store `result` with `key`, in the caller's transaction. A key stored already
        (a racing attempt committed first) raises the driver's integrity error."""
        if result is None:
            raise ValueError("a None result can't be told from no result; return a value")
        self._execute(
            f"INSERT INTO {self.table} (key, result) VALUES (?, ?)",
            (key, json.dumps(result, ensure_ascii=False)),
        )

    def _execute(self, sql: str, params: tuple[Any, ...]) -> Any:
        cursor = self.connection.cursor()
        if self._create:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, result TEXT NOT NULL)"
            )
            self._create = False
        cursor.execute(sql.replace("?", self.placeholder), params)
        return cursor

    def __repr__(self) -> str:
        return f"KeyedResults(table={self.table})"


def _placeholder(connection: Any) -> str:
    if isinstance(connection, sqlite3.Connection):
        return "?"
    if type(connection).__module__.partition(".")[0] in _PSYCOPG:
        return "%s"
    raise TypeError(
        f"KeyedResults needs a sqlite3 or psycopg connection, not {type(connection).__name__}"
    )
