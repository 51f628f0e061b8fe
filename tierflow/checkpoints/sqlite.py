"""The SQLite checkpoint store: LangGraph's `SqliteSaver` on a WAL database file.

One file holds the checkpoints and tierflow's runs table. `open()` checks the file is a
SQLite database before anything writes to it, so a wrong path is an error, not a new
table in somebody else's database file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Self

from langgraph.checkpoint.sqlite import SqliteSaver

from tierflow.errors import CheckpointError

BUSY_TIMEOUT_MS = 5000


class SqliteStore(SqliteSaver):
    """A `SqliteSaver` that owns its connection: use it as a context manager."""

    path: Path

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connect(path: Path) -> sqlite3.Connection:
    """A connection with WAL and a busy timeout, checked to be a readable SQLite file."""
    try:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as error:
        raise CheckpointError(f"cannot open database {path}: {error}") from error
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as error:
        conn.close()
        raise CheckpointError(f"{path} is not a readable SQLite database ({error})") from error
    return conn


def open_sqlite(path: str | Path, *, create: bool = True) -> SqliteStore:
    """The checkpoint saver for the SQLite file at `path`.

    `create=False` refuses a missing file instead of creating an empty database (for
    commands that only read or resume).
    """
    target = Path(path)
    if not create and not target.exists():
        raise CheckpointError(f"no database at {target}")
    if create:
        target.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(connect(target))
    store.path = target
    try:
        store.setup()
    except sqlite3.DatabaseError as error:
        store.close()
        raise CheckpointError(f"{target}: cannot set up checkpoint tables ({error})") from error
    return store
