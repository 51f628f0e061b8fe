"""Checkpoint stores and the runs table.

`open(target)` is the entry point: a SQLite file path gives tierflow's own normalised
saver (`SqliteStore`), a `postgresql://` URL gives LangGraph's Postgres saver. Both are
context managers that own their connection.
"""

from __future__ import annotations

from pathlib import Path

from tierflow.checkpoints.runs import RunRow, RunsTable
from tierflow.checkpoints.saver import SqliteStore
from tierflow.checkpoints.sqlite import open_database


def open_sqlite(path: str | Path, *, create: bool = True) -> SqliteStore:
    """tierflow's SQLite saver on the file at `path` (checked, WAL, migrated).

    `create=False` refuses a missing file instead of creating an empty database."""
    target = Path(path)
    return SqliteStore(open_database(target, create=create), target)


open = open_sqlite  # the documented entry: `tierflow.checkpoints.open(path)`

__all__ = ["RunRow", "RunsTable", "SqliteStore", "open", "open_sqlite"]
