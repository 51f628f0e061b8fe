"""The checkpoint database's schema and its versioned migrations (sqlite-utils).

Every migration is a function of the database, applied once, in order, inside one
`BEGIN IMMEDIATE` transaction, and recorded in `tierflow_schema`. A file whose recorded
version is newer than `SCHEMA_VERSION` was written by a newer tierflow and is refused
before anything touches it (`sqlite.inspect_file`).

The tables, and why they look the way they do (docs/checkpoints.md has the long form):

- `threads`: one row per (thread id, checkpoint namespace), so every other table keys
  on a small integer instead of repeating the thread's text id.
- `checkpoints`: one row per checkpoint; `payload` is the checkpoint without its large
  channel values (small scalars stay inline) and its metadata, serialised and
  zlib-compressed (`codec.py`). `parent` links to the parent's row.
- `channel_values`: one row per (thread, channel, version): a channel's value is stored
  once per version, never again per checkpoint. A list value is stored as a delta:
  `prefix` items of its `base` version, then the items of its `segments`.
- `tasks` and `writes`: the pending writes of each checkpoint's tasks.
- `blobs`: serialised values, content-addressed by hash. A message a node writes and the
  same message appended to `messages` are one blob, referenced twice.
- `runs`: tierflow's run registry (`runs.py`), in the same file.
- v3: the governance tables, leases and approvals (`tables.py`, shared with Postgres).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from tierflow.errors import CheckpointError
from tierflow.store.tables import RUNS_COLUMNS_V3, ddl

SCHEMA_TABLE = "tierflow_schema"

# The runs table's columns; `runs.py` reads and writes them.
RUNS_COLUMNS: dict[str, type] = {
    "thread": str,
    "agent": str,
    "source": str,
    "request": str,
    "status": str,
    "started_at": str,
    "updated_at": str,
    "answer": str,
    "tiers": str,
    "input_tokens": int,
    "cached_tokens": int,
    "output_tokens": int,
    "reasoning_tokens": int,
    "cost_usd": float,
    "error": str,
    # JSON lists: every route decision (escalations included) and every guard verdict.
    "routes": str,
    "verdicts": str,
    # v3: who the run acts for (JSON), its agent's fingerprint, its provider file.
    "principal": str,
    "fingerprint": str,
    "provider": str,
}
# Columns added after v1, by the migration that added them.
RUNS_COLUMNS_V2 = ("routes", "verdicts")


def _v1_tables(db: sqlite_utils.Database) -> None:
    db.table("threads").create(
        {"id": int, "thread_id": str, "checkpoint_ns": str},
        pk="id",
        not_null={"thread_id", "checkpoint_ns"},
    )
    db.table("threads").create_index(["thread_id", "checkpoint_ns"], unique=True)
    db.table("checkpoints").create(
        {
            "id": int,
            "thread": int,
            "checkpoint_id": str,
            "parent": int,
            "run_id": str,
            "step": int,
            "ts": int,  # microseconds since the epoch
            "type": str,
            "payload": bytes,
        },
        pk="id",
        not_null={"thread", "checkpoint_id", "type", "payload"},
    )
    db.table("checkpoints").create_index(["thread", "checkpoint_id"], unique=True)
    db.table("checkpoints").create_index(["run_id"])
    db.table("channel_values").create(
        {
            "id": int,
            "thread": int,
            "channel": str,
            "version": str,
            "kind": int,
            "base": int,
            "prefix": int,
            "segments": bytes,
        },
        pk="id",
        not_null={"thread", "channel", "version", "kind"},
    )
    db.table("channel_values").create_index(["thread", "channel", "version"], unique=True)
    db.table("tasks").create(
        {"id": int, "thread": int, "checkpoint_id": str, "task_id": str, "task_path": str},
        pk="id",
        not_null={"thread", "checkpoint_id", "task_id", "task_path"},
    )
    db.table("tasks").create_index(["thread", "checkpoint_id", "task_id"], unique=True)
    db.table("writes").create(
        {"task": int, "idx": int, "channel": str, "blob": int},
        not_null={"task", "idx", "channel", "blob"},
    )
    db.table("writes").create_index(["task", "idx"], unique=True)
    db.table("blobs").create(
        {"id": int, "hash": bytes, "type": str, "zlib": int, "data": bytes},
        pk="id",
        not_null={"hash", "type", "zlib", "data"},
    )
    db.table("blobs").create_index(["hash"], unique=True)
    if not db.table("runs").exists():  # files written before the schema was versioned have it
        later = (*RUNS_COLUMNS_V2, *RUNS_COLUMNS_V3)
        v1 = {k: v for k, v in RUNS_COLUMNS.items() if k not in later}
        db.table("runs").create(v1, pk="thread")


def _v2_run_routes_and_verdicts(db: sqlite_utils.Database) -> None:
    runs = db.table("runs")
    for column in RUNS_COLUMNS_V2:
        if column not in runs.columns_dict:
            runs.add_column(column, str)


def _v3_governance_leases_approvals(db: sqlite_utils.Database) -> None:
    """The governance tables (created ad hoc before v3), leases, approvals, and what a
    run records before its first step."""
    for statement in ddl("sqlite"):
        db.execute(statement)
    runs = db.table("runs")
    for column in RUNS_COLUMNS_V3:
        if column not in runs.columns_dict:
            runs.add_column(column, str)


Migration = Callable[[sqlite_utils.Database], None]

# Append only: a migration's position (from 1) is the schema version it produces.
MIGRATIONS: tuple[Migration, ...] = (
    _v1_tables,
    _v2_run_routes_and_verdicts,
    _v3_governance_leases_approvals,
)
SCHEMA_VERSION = len(MIGRATIONS)


def recorded_version(db: sqlite_utils.Database) -> int:
    """The schema version the file says it has (0 for a file without tierflow's tables)."""
    if not db.table(SCHEMA_TABLE).exists():
        return 0
    return max((int(row["version"]) for row in db.table(SCHEMA_TABLE).rows), default=0)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the schema to `SCHEMA_VERSION`; the caller holds a write transaction.

    Returns the version found, so callers can tell a fresh file from an upgraded one."""
    if not db.table(SCHEMA_TABLE).exists():
        db.table(SCHEMA_TABLE).create({"version": int, "applied_at": str}, pk="version")
    found = recorded_version(db)
    if found > SCHEMA_VERSION:  # another process may have upgraded it since we looked
        raise CheckpointError(f"checkpoint schema v{found} is newer than v{SCHEMA_VERSION}")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version - 1](db)
        applied = datetime.now(UTC).isoformat(timespec="seconds")
        db.table(SCHEMA_TABLE).insert({"version": version, "applied_at": applied})
    return found
