"""Checkpoint stores and the runs table.

`open(target)` is the entry point: a SQLite file path gives tierflow's own normalised
saver (`SqliteStore`), a `postgresql://` URL gives LangGraph's Postgres saver (needs
`tierflow[postgres]`). Both are context managers that own their connection; the runs
table lives in the same database. `history.py` has time travel and retention for both.

`RunRow`, `RunsTable` and `SqliteStore` load on first use (`tierflow.foundation.lazy`), so a module
that only needs `targets` or `database` doesn't import the saver (and LangGraph's
checkpoint base) or sqlite-utils.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tierflow.errors import CheckpointError
from tierflow.foundation.lazy import lazy_names
from tierflow.store.targets import is_postgres

if TYPE_CHECKING:
    from tierflow.store.postgres import PostgresStore
    from tierflow.store.runs import RunRow, RunsTable
    from tierflow.store.saver import SqliteStore

__all__ = ["RunRow", "RunsTable", "SqliteStore", "open", "open_sqlite"]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.store.runs": ("RunRow", "RunsTable"),
        "tierflow.store.saver": ("SqliteStore",),
    },
)


def open_sqlite(path: str | Path, *, create: bool = True) -> SqliteStore:
    """tierflow's SQLite saver on the file at `path` (checked, WAL, migrated).

    `create=False` refuses a missing file instead of creating an empty database."""
    from tierflow.store.database import acquire_sqlite
    from tierflow.store.saver import SqliteStore

    return SqliteStore(acquire_sqlite(Path(path), create=create))


def open(target: str | Path, *, create: bool = True) -> SqliteStore | PostgresStore:
    """The checkpoint saver for `target`: a SQLite file path or a `postgresql://` URL."""
    if not is_postgres(target):
        return open_sqlite(target, create=create)
    try:
        from tierflow.store.postgres import open_postgres
    except ImportError as error:
        raise CheckpointError(
            f"a postgresql:// database needs tierflow[postgres] ({error.name} is missing)"
        ) from error
    return open_postgres(str(target))
