"""The governance tables, in the run store (the checkpoint database).

Budgets, the ledger, side effects, approvals and the audit log live in the same
database as a thread's checkpoints and its runs row — a SQLite file or Postgres — so
they travel together and one `--db` names all of it. The tables are created by the
store's versioned migrations (`tierflow.store.tables`), and every transaction
goes through the process's one connection owner (`tierflow.store.database`):
nothing here opens the database itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tierflow.store import database
from tierflow.store.database import Tx
from tierflow.store.targets import is_postgres

BUDGETS = "budgets"
LEDGER = "budget_ledger"
SIDE_EFFECTS = "side_effects"
AUDIT = "audit"


def utc_now() -> str:
    """The default clock of every governance table: UTC, ISO 8601, microseconds (audit
    rows of one step are often less than a millisecond apart)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class GovernanceTables:
    """The governance tables of the run store at `target` (a SQLite path or a
    `postgresql://` URL)."""

    def __init__(self, target: str | Path) -> None:
        self.target: str | Path = target if is_postgres(target) else Path(target)

    @property
    def path(self) -> str | Path:
        return self.target

    @contextmanager
    def transaction(self, *, write: bool = True, create: bool = True) -> Iterator[Tx]:
        """One transaction, committed when the block ends.

        Writes are serialised per database from their first statement (SQLite's
        `BEGIN IMMEDIATE`, Postgres's advisory lock): a read-then-write transaction — a
        budget check, then the reservation — sees totals no other writer can change
        before it commits. That is what makes reservations from concurrent threads and
        processes atomic. `create=False` refuses a missing SQLite file (for readers)."""
        with (
            database.using(self.target, create=create) as db,
            db.transaction(write=write) as tx,
        ):
            yield tx
