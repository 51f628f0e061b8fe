"""The runs table: one row per thread, what it is, where it stands, what it cost.

It lives in the checkpoint database — the SQLite file (sqlite-utils) or the Postgres
database — so a thread's checkpoints and its summary are stored, and travel, together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypedDict

import sqlite_utils

from tierflow.checkpoints.schema import RUNS_COLUMNS as COLUMNS
from tierflow.checkpoints.sqlite import open_database
from tierflow.checkpoints.targets import describe, is_postgres
from tierflow.errors import CheckpointError

RUNS = "runs"
JSON_COLUMNS = frozenset({"tiers", "routes", "verdicts"})


class RunRow(TypedDict):
    thread: str
    agent: str
    source: str
    request: str
    status: str
    started_at: str
    updated_at: str
    answer: str | None
    tiers: list[str]
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    error: str | None
    routes: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Rows(Protocol):
    """Where the rows live: what `RunsTable` needs of a database."""

    def upsert(self, thread: str, values: dict[str, Any], *, only_existing: bool) -> bool: ...

    def rows(self, thread: str | None = None) -> list[dict[str, Any]]: ...


class SqliteRows:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self, *, write: bool) -> Iterator[sqlite_utils.Database]:
        # Writes take the write lock up front: a read-then-write transaction could not
        # wait for another process's writer and would fail with "database is locked".
        conn = open_database(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield sqlite_utils.Database(conn, execute_plugins=False)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            raise CheckpointError(f"{self.path}: runs table unusable ({error})") from error
        finally:
            conn.close()

    def upsert(self, thread: str, values: dict[str, Any], *, only_existing: bool) -> bool:
        with self._db(write=True) as db:
            table = db.table(RUNS)
            if only_existing:
                if not list(table.rows_where("thread = ?", [thread])):
                    return False
                table.update(thread, values)
            else:
                table.upsert({"thread": thread, **values}, pk="thread")
            return True

    def rows(self, thread: str | None = None) -> list[dict[str, Any]]:
        with self._db(write=False) as db:
            if thread is None:
                return list(db.table(RUNS).rows_where(order_by="started_at, thread"))
            return list(db.table(RUNS).rows_where("thread = ?", [thread]))


class RunsTable:
    """Read and write the runs table of the database at `target` (a SQLite file path or
    a `postgresql://` URL)."""

    def __init__(self, target: str | Path, *, clock: Callable[[], str] = utc_now) -> None:
        self.target = target
        self.clock = clock
        self.store: Rows
        if is_postgres(target):
            from tierflow.checkpoints.postgres import PostgresRuns  # needs tierflow[postgres]

            self.store = PostgresRuns(str(target))
        else:
            self.store = SqliteRows(Path(target))

    def start(self, thread: str, *, agent: str, source: str, request: str) -> None:
        """Record a run (or a new request on an existing thread) as running."""
        now = self.clock()
        existing = self.get(thread)
        self.store.upsert(
            thread,
            {
                "agent": agent,
                "source": source,
                "request": request,
                "status": "running",
                "started_at": existing["started_at"] if existing else now,
                "updated_at": now,
                "error": None,
            },
            only_existing=False,
        )

    def update(self, thread: str, **values: Any) -> None:
        """Set columns of an existing run; `tiers`, `routes` and `verdicts` are stored as
        JSON lists."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns {sorted(unknown)}")
        for column in JSON_COLUMNS & set(values):
            values[column] = json.dumps(values[column])
        if not self.store.upsert(
            thread, {**values, "updated_at": self.clock()}, only_existing=True
        ):
            raise CheckpointError(f"unknown thread {thread!r} in {describe(self.target)}")

    def get(self, thread: str) -> RunRow | None:
        rows = self.store.rows(thread)
        return _decode(rows[0]) if rows else None

    def all(self) -> list[RunRow]:
        return [_decode(row) for row in self.store.rows()]


def _decode(row: dict[str, Any]) -> RunRow:
    return RunRow(
        thread=row["thread"],
        agent=row["agent"] or "",
        source=row["source"] or "",
        request=row["request"] or "",
        status=row["status"] or "",
        started_at=row["started_at"] or "",
        updated_at=row["updated_at"] or "",
        answer=row["answer"],
        tiers=json.loads(row["tiers"]) if row["tiers"] else [],
        input_tokens=row["input_tokens"] or 0,
        cached_tokens=row["cached_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        reasoning_tokens=row["reasoning_tokens"] or 0,
        cost_usd=row["cost_usd"] or 0.0,
        error=row["error"],
        routes=json.loads(row["routes"]) if row.get("routes") else [],
        verdicts=json.loads(row["verdicts"]) if row.get("verdicts") else [],
    )
