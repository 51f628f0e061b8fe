"""SQLite's own word on a query: prepared against an empty database of the declared schema.

The guard reads the query through sqlglot's parser; SQLite runs it through its own. Where
the two read a text differently — a tokenizer corner, a syntax sqlglot models loosely —
the guard could check one query and SQLite run another. So, for the SQLite dialect, a
query that passed every other rule is also prepared (`EXPLAIN QUERY PLAN`, nothing runs)
on an in-memory database holding exactly the declared tables and columns, no rows: any
name SQLite resolves there is a declared one, and anything it can't resolve — a hidden
column, a second statement, a function off the allowlist — fails the check.

A function on the allowlist that this SQLite doesn't have (one the application registers,
or one newer than this SQLite) gets a stand-in for the preparation.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from contextlib import closing

from sqlglot import exp

_NO_SUCH_FUNCTION = re.compile(r"no such function: (\w+)", re.IGNORECASE)
_BUILT_IN_DATABASES = frozenset({"main", "temp"})


def _stand_in(*_: object) -> None:
    return None


class DeclaredDatabase:
    """The declared schema as an empty SQLite database, to prepare queries against."""

    def __init__(
        self,
        columns: Mapping[str, Sequence[str]],
        *,
        databases: Collection[str] = (),
        functions: Collection[str] = (),
    ) -> None:
        self.functions = frozenset(f.lower() for f in functions)
        self.attached = sorted(set(databases) - _BUILT_IN_DATABASES)
        with closing(sqlite3.connect(":memory:")) as conn:
            for table, names in columns.items():
                try:
                    conn.execute(_create_table(table, names))
                except sqlite3.Error as error:
                    raise ValueError(f"table {table!r} can't be declared: {error}") from None
            self._image = conn.serialize()

    def problem(self, sql: str) -> str | None:
        """Why SQLite can't prepare `sql` against the declared schema, or None."""
        with closing(sqlite3.connect(":memory:")) as conn:
            conn.deserialize(self._image)
            for name in self.attached:
                conn.execute("ATTACH DATABASE ':memory:' AS " + _quoted(name))
                conn.deserialize(self._image, name=name)
            conn.execute("PRAGMA query_only = ON")
            for _ in range(16):  # stand-ins for allowed functions this SQLite lacks
                try:
                    conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
                except sqlite3.OperationalError as error:
                    missing = _NO_SUCH_FUNCTION.search(str(error))
                    if missing is None or missing.group(1).lower() not in self.functions:
                        return str(error)
                    conn.create_function(missing.group(1), -1, _stand_in)
                except (sqlite3.Error, sqlite3.Warning, ValueError) as error:
                    return str(error)
                else:
                    return None
        return "too many functions unknown to SQLite"


def _quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="sqlite")


def _create_table(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(_quoted(column) for column in columns)
    return f"CREATE TABLE {_quoted(table)} ({names})"
