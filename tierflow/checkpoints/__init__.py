"""Checkpoint stores and the runs table."""

from tierflow.checkpoints.runs import RunRow, RunsTable
from tierflow.checkpoints.sqlite import SqliteStore, open_sqlite

open = open_sqlite  # the documented entry: `tierflow.checkpoints.open(path)`

__all__ = ["RunRow", "RunsTable", "SqliteStore", "open", "open_sqlite"]
