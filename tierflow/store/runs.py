"""The runs table: one row per thread, what it is, where it stands, what it cost.

It lives in the checkpoint database — the SQLite file (sqlite-utils) or the Postgres
database — so a thread's checkpoints and its summary are stored, and travel, together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from tierflow.errors import CheckpointError
from tierflow.store import database, leases
from tierflow.store.database import Tx, rows_as_dicts
from tierflow.store.schema import RUNS_COLUMNS as COLUMNS
from tierflow.store.targets import describe

RUNS = "runs"
JSON_COLUMNS = frozenset({"tiers", "routes", "verdicts"})
# Statuses of a run a live process executes; without the lease, the run `crashed`.
LIVE_STATUSES = frozenset({"running", "waiting"})


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
    # Recorded before the first step; a resume uses exactly these.
    principal: dict[str, Any] | None
    fingerprint: str
    provider: str


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quoted(column: str) -> str:
    if column not in COLUMNS:  # names come from the fixed column list, never from input
        raise ValueError(f"unknown runs column {column!r}")
    return f'"{column}"'


class RunsTable:
    """Read and write the runs table of the database at `target` (a SQLite file path or
    a `postgresql://` URL), through the process's connection to it."""

    def __init__(self, target: str | Path, *, clock: Callable[[], str] = utc_now) -> None:
        self.target = target
        self.clock = clock

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Tx]:
        with database.using(self.target) as db, db.transaction(write=write) as tx:
            yield tx

    def _upsert(self, thread: str, values: dict[str, Any], *, only_existing: bool) -> bool:
        names = list(values)
        with self._tx(write=True) as tx:
            if only_existing:
                assignments = ", ".join(f"{_quoted(n)} = ?" for n in names)
                cursor = tx.execute(
                    f"UPDATE runs SET {assignments} WHERE thread = ?",
                    [*values.values(), thread],
                )
                return cursor.rowcount > 0
            columns = ", ".join(_quoted(n) for n in ["thread", *names])
            marks = ", ".join("?" for _ in range(len(names) + 1))
            updates = ", ".join(f"{_quoted(n)} = excluded.{_quoted(n)}" for n in names)
            tx.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (thread) DO UPDATE SET {updates}",
                [thread, *values.values()],
            )
            return True

    def _rows(self, thread: str | None = None) -> list[dict[str, Any]]:
        with self._tx(write=False) as tx:
            if thread is None:
                return rows_as_dicts(tx.execute("SELECT * FROM runs ORDER BY started_at, thread"))
            return rows_as_dicts(tx.execute("SELECT * FROM runs WHERE thread = ?", [thread]))

    def start(
        self,
        thread: str,
        *,
        agent: str,
        source: str,
        request: str,
        principal: dict[str, Any] | None = None,
        fingerprint: str = "",
        provider: str = "",
    ) -> None:
        """Record a run (or a new request on an existing thread) as running, with who
        it acts for, its agent's fingerprint and provider, before its first step."""
        now = self.clock()
        existing = self.get(thread)
        self._upsert(
            thread,
            {
                "agent": agent,
                "source": source,
                "request": request,
                "status": "running",
                "started_at": existing["started_at"] if existing else now,
                "updated_at": now,
                "error": None,
                "principal": None if principal is None else json.dumps(principal),
                "fingerprint": fingerprint,
                "provider": provider,
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
        if not self._upsert(thread, {**values, "updated_at": self.clock()}, only_existing=True):
            raise CheckpointError(f"unknown thread {thread!r} in {describe(self.target)}")

    def get(self, thread: str) -> RunRow | None:
        rows = self._rows(thread)
        return self._decoded(rows)[0] if rows else None

    def all(self) -> list[RunRow]:
        return self._decoded(self._rows())

    def _decoded(self, rows: list[dict[str, Any]]) -> list[RunRow]:
        """Rows as `RunRow`s; a run marked running or waiting whose process no longer
        holds its lease shows as `crashed` (resumable)."""
        decoded = [_decode(row) for row in rows]
        if any(row["status"] in LIVE_STATUSES for row in decoded):
            with database.using(self.target) as db:
                live = leases.live_threads(db)
            for row in decoded:
                if row["status"] in LIVE_STATUSES and row["thread"] not in live:
                    row["status"] = "crashed"
        return decoded


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
        principal=json.loads(row["principal"]) if row.get("principal") else None,
        fingerprint=row.get("fingerprint") or "",
        provider=row.get("provider") or "",
    )
