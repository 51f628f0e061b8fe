"""The governance tables, in the runs database (the checkpoint SQLite file).

Budgets, the ledger, side effects and the audit log live in the same file as a thread's
checkpoints and its runs row, so they travel together and one `--db` names all of it.
The file is opened through `tierflow.checkpoints.sqlite.open_database`, which refuses a
file that isn't tierflow's and brings the checkpoint schema up to date first; the
governance tables are then created if missing (`CREATE TABLE IF NOT EXISTS`, inside a
write transaction, so two processes racing to create them can't both try).

Each transaction opens its own connection and closes it: a connection is not shared
between threads, and a transaction never outlives the `with` block that started it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from tierflow.checkpoints.sqlite import open_database
from tierflow.governance.errors import GovernanceError

BUDGETS = "budgets"
LEDGER = "budget_ledger"
SIDE_EFFECTS = "side_effects"
AUDIT = "audit"


def utc_now() -> str:
    """The default clock of every governance table: UTC, ISO 8601, microseconds (audit
    rows of one step are often less than a millisecond apart)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _create_tables(db: sqlite_utils.Database) -> None:
    db.table(BUDGETS).create(
        {"key": str, "limit_usd_nano": int, "limit_tokens": int, "updated_at": str},
        pk="key",
        if_not_exists=True,
    )
    # One row per (reservation, budget key). Money is integer nano-USD: sums of floats
    # drift, and a budget check must not flip on the sixteenth digit.
    db.table(LEDGER).create(
        {
            "id": int,
            "reservation": str,
            "key": str,
            "state": str,  # reserved | settled | abandoned
            "reserved_usd_nano": int,
            "reserved_tokens": int,
            "usd_nano": int,  # what was spent (0 while reserved)
            "tokens": int,
            "thread": str,
            "label": str,
            "reserved_at": str,
            "settled_at": str,
        },
        pk="id",
        not_null={"reservation", "key", "state", "reserved_usd_nano", "reserved_tokens"},
        if_not_exists=True,
    )
    db.table(LEDGER).create_index(["key", "state"], if_not_exists=True)
    db.table(LEDGER).create_index(["reservation"], if_not_exists=True)
    db.table(LEDGER).create_index(["thread", "state"], if_not_exists=True)
    db.table(SIDE_EFFECTS).create(
        {
            "key": str,
            "thread": str,
            "step": int,
            "call_id": str,
            "tool": str,
            "state": str,  # started | done
            "attempts": int,
            "ok": int,
            "content": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="key",
        not_null={"state", "attempts"},
        if_not_exists=True,
    )
    db.table(AUDIT).create(
        {
            "id": int,
            "event": str,  # unique when given: a replayed step doesn't log its calls twice
            "time": str,
            "thread": str,
            "step": int,
            "principal": str,
            "agent": str,
            "kind": str,
            "name": str,
            "call_id": str,
            "arguments": str,
            "decision": str,
            "outcome": str,
            "reason": str,
            "latency_s": float,
            "tokens": int,
            "cost_usd": float,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table(AUDIT).create_index(["thread", "id"], if_not_exists=True)
    db.table(AUDIT).create_index(["event"], unique=True, if_not_exists=True)


def _has_tables(conn: sqlite3.Connection) -> bool:
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    return {BUDGETS, LEDGER, SIDE_EFFECTS, AUDIT} <= tables


class GovernanceStore:
    """The governance tables of the runs database at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def transaction(
        self, *, write: bool = True, create: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction, committed when the block ends.

        Writes take the write lock up front (`BEGIN IMMEDIATE`): a read-then-write
        transaction — a budget check, then the reservation — must see the totals no
        other writer can change before it commits. That is what makes reservations
        from concurrent threads and processes atomic. `create=False` refuses a missing
        file (for readers) instead of creating an empty database."""
        conn = open_database(self.path, create=create)
        try:
            if not _has_tables(conn):
                self._create(conn)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            raise GovernanceError(f"{self.path}: governance tables unusable ({error})") from error
        finally:
            conn.close()

    @contextmanager
    def table_writer(self) -> Iterator[sqlite_utils.Database]:
        """A sqlite-utils view of one write transaction."""
        with self.transaction(write=True) as conn:
            yield sqlite_utils.Database(conn, execute_plugins=False)

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _create_tables(sqlite_utils.Database(conn, execute_plugins=False))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
