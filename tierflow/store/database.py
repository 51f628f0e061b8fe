"""The run store's connection owner: one per process and database.

Every table tierflow keeps — checkpoints, runs, leases, approvals, budgets and ledger,
side effects, audit — is reached through the `Database` of its target, and a process
has exactly one per target (`database(target)`):

- **SQLite**: one connection per process and file (WAL, busy timeout), shared by the
  process's threads under one re-entrant lock, closed when the last user releases it.
  Nothing else in tierflow opens the file. That is not tidiness: closing *any*
  descriptor of a file drops every POSIX lock the process holds on it, so a second
  open/close beside a live connection lets another process write over a transaction
  in flight (SQLite's "How To Corrupt An SQLite Database File", §2.2). The one look
  at an unknown file (`sqlite.inspect_file`) goes through SQLite's own VFS, which
  defers such closes.
- **Postgres**: one connection pool per process and URL; LangGraph's saver takes its
  connections from the same pool.

A transaction is `with db.transaction(write=True) as tx: tx.execute(sql, params)`.
SQL is written once, in the dialect both engines share (`?` placeholders, `ON CONFLICT`
upserts); the Postgres side rewrites the placeholders. Write transactions are
serialised per database — SQLite by `BEGIN IMMEDIATE`, Postgres by a transaction-level
advisory lock — so a read-then-write (a budget check, then its reservation; a lease
check, then its claim) sees totals no other writer can change before it commits.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tierflow.errors import CheckpointError
from tierflow.store.targets import describe, is_memory, is_postgres

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import DictRow
    from psycopg_pool import ConnectionPool

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    """What a statement returns: the DB-API subset tierflow uses."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction."""

    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor: ...


class Database(Protocol):
    """A process's handle on one run store."""

    target: str | Path
    dialect: Dialect

    def transaction(self, *, write: bool) -> Any:  # a context manager of `Tx`
        ...

    def release(self) -> None: ...


def rows_as_dicts(cursor: Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


# -- SQLite ---------------------------------------------------------------------------


class SqliteTx:
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        return self.conn.executemany(sql, rows)


class SqliteDatabase:
    """The process's connection to one SQLite run store (see the module docstring)."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path, key: str) -> None:
        self.conn = conn
        self.path = path
        self.target: str | Path = path
        self.key = key
        self.lock = threading.RLock()
        self.users = 0
        self.pid = os.getpid()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[SqliteTx]:
        """One transaction; SQLite errors become `CheckpointError`. Writes take the write
        lock up front: a read-then-write transaction could not otherwise wait for
        another process's writer."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield SqliteTx(self.conn)
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:  # a failed COMMIT leaves it open
                        self.conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise CheckpointError(f"{self.path}: {error}") from error

    def release(self) -> None:
        """One user is done with it; the last one closes the connection."""
        with _REGISTRY_LOCK:
            if _last_user(self):
                with self.lock:
                    self.conn.close()


# -- Postgres -------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\?")
_NAMED = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
# One writer at a time on tierflow's own tables, across every process and machine.
WRITE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('tierflow_writes'))"


def postgres_sql(sql: str, params: Params) -> str:
    """tierflow's shared SQL with psycopg's placeholders: `?` → `%s`, `:name` →
    `%(name)s`; a literal `%` is doubled."""
    sql = sql.replace("%", "%%")
    if isinstance(params, Mapping):
        return _NAMED.sub(r"%(\1)s", sql)
    return _PLACEHOLDER.sub("%s", sql)


class PostgresTx:
    dialect: Dialect = "postgres"

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        cursor = self.conn.cursor(row_factory=_tuple_row())
        cursor.execute(postgres_sql(sql, params), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        cursor = self.conn.cursor(row_factory=_tuple_row())
        if rows:
            cursor.executemany(postgres_sql(sql, rows[0]), rows)
        return cursor


def _tuple_row() -> Any:
    from psycopg.rows import tuple_row

    return tuple_row


class PostgresDatabase:
    """The process's connection pool for one Postgres run store."""

    dialect: Dialect = "postgres"

    def __init__(self, pool: ConnectionPool[Connection[DictRow]], url: str, key: str) -> None:
        self.pool = pool
        self.url = url
        self.target: str | Path = url
        self.key = key
        self.users = 0
        self.pid = os.getpid()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[PostgresTx]:
        import psycopg

        try:
            with self.pool.connection() as conn, conn.transaction():
                if write:
                    conn.execute(WRITE_LOCK_SQL)
                yield PostgresTx(conn)
        except psycopg.Error as error:
            raise CheckpointError(f"{describe(self.url)}: {error}") from error

    def release(self) -> None:
        """One user is done with it; the last one closes the pool."""
        with _REGISTRY_LOCK:
            last = _last_user(self)
        if last:
            self.pool.close()


# -- the registry ---------------------------------------------------------------------

_REGISTRY: dict[str, SqliteDatabase | PostgresDatabase] = {}
_REGISTRY_LOCK = threading.RLock()


def _last_user(db: SqliteDatabase | PostgresDatabase) -> bool:
    """Count one user out (the caller holds the registry lock); True for the last one,
    whose database then leaves the registry."""
    db.users -= 1
    if db.users > 0:
        return False
    if _REGISTRY.get(db.key) is db:
        del _REGISTRY[db.key]
    return True


def _key(target: str | Path) -> str:
    if is_postgres(target) or is_memory(target):
        return f"{os.getpid()}:{target}"
    return f"{os.getpid()}:{os.path.realpath(target)}"


def acquire(target: str | Path, *, create: bool = True) -> SqliteDatabase | PostgresDatabase:
    """The process's database for `target` (a SQLite path or a `postgresql://` URL),
    opened, checked and migrated on first use; call `release()` when done.

    `create=False` refuses a missing SQLite file instead of creating it."""
    key = _key(target)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            found = _open(target, create=create, key=key)
            _REGISTRY[key] = found
            if is_memory(target):
                found.users += 1  # never closed: closing would lose every table in it
        found.users += 1
        return found


def acquire_sqlite(path: str | Path, *, create: bool = True) -> SqliteDatabase:
    found = acquire(Path(path), create=create)
    assert isinstance(found, SqliteDatabase)
    return found


@contextmanager
def using(
    target: str | Path, *, create: bool = True
) -> Iterator[SqliteDatabase | PostgresDatabase]:
    """`acquire` for the length of a `with` block."""
    db = acquire(target, create=create)
    try:
        yield db
    finally:
        db.release()


def _open(target: str | Path, *, create: bool, key: str) -> SqliteDatabase | PostgresDatabase:
    if is_postgres(target):
        from tierflow.store.postgres import open_pool

        return PostgresDatabase(open_pool(str(target)), str(target), key)
    from tierflow.store.sqlite import open_database, open_memory

    if is_memory(target):
        return SqliteDatabase(open_memory(), Path(str(target)), key)
    path = Path(target)
    return SqliteDatabase(open_database(path, create=create), path, key)


def is_shared(target: str | Path) -> bool:
    """Whether this process has `target` open (for tests and diagnostics)."""
    with _REGISTRY_LOCK:
        return _key(target) in _REGISTRY
