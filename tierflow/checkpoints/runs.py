"""The runs table: one row per thread, what it is, where it stands, what it cost.

It lives in the checkpoint database (sqlite-utils manages the schema), so a thread's
checkpoints and its summary are in one file and travel together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import sqlite_utils

from tierflow.checkpoints.schema import RUNS_COLUMNS as COLUMNS
from tierflow.checkpoints.sqlite import open_database
from tierflow.errors import CheckpointError

RUNS = "runs"


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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunsTable:
    """Read and write the runs table of the database at `path`."""

    def __init__(self, path: str | Path, *, clock: Callable[[], str] = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock

    @contextmanager
    def _db(self, *, write: bool = False) -> Iterator[sqlite_utils.Database]:
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

    def start(self, thread: str, *, agent: str, source: str, request: str) -> None:
        """Record a run (or a new request on an existing thread) as running."""
        now = self.clock()
        with self._db(write=True) as db:
            existing = _row(db, thread)
            started = existing["started_at"] if existing else now
            db.table(RUNS).upsert(
                {
                    "thread": thread,
                    "agent": agent,
                    "source": source,
                    "request": request,
                    "status": "running",
                    "started_at": started,
                    "updated_at": now,
                    "error": None,
                },
                pk="thread",
            )

    def update(self, thread: str, **values: Any) -> None:
        """Set columns of an existing run; `tiers` is stored as a JSON list."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns {sorted(unknown)}")
        if "tiers" in values:
            values["tiers"] = json.dumps(values["tiers"])
        with self._db(write=True) as db:
            if _row(db, thread) is None:
                raise CheckpointError(f"unknown thread {thread!r} in {self.path}")
            db.table(RUNS).update(thread, {**values, "updated_at": self.clock()})

    def get(self, thread: str) -> RunRow | None:
        with self._db() as db:
            return _row(db, thread)

    def all(self) -> list[RunRow]:
        with self._db() as db:
            rows = db[RUNS].rows_where(order_by="started_at, thread")
            return [_decode(row) for row in rows]


def _row(db: sqlite_utils.Database, thread: str) -> RunRow | None:
    rows = list(db[RUNS].rows_where("thread = ?", [thread]))
    return _decode(rows[0]) if rows else None


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
    )
