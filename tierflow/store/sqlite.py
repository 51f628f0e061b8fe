"""Opening the SQLite checkpoint file: refuse what isn't ours before writing anything.

`open_database` reads the file read-only first: a file that is not SQLite, is damaged,
belongs to something else, or carries a newer schema is a `CheckpointError`, and the
file is left exactly as it was. Only then is it opened for writing, switched to WAL with
a busy timeout (several processes may write one file), and migrated.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from enum import Enum
from pathlib import Path

import sqlite_utils

from tierflow.errors import CheckpointError
from tierflow.store.codec import pack_id
from tierflow.store.schema import SCHEMA_TABLE, SCHEMA_VERSION, migrate

BUSY_TIMEOUT_MS = 30_000
WAL_RETRY_S = 0.01
# The layout tierflow 0.1 wrote: LangGraph's SqliteSaver tables and the runs table.
LEGACY_TABLES = frozenset({"checkpoints", "writes", "runs"})
LEGACY_CHECKPOINT_COLUMNS = frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint"})


class FileKind(Enum):
    MISSING = "missing"
    EMPTY = "empty"
    CURRENT = "current"  # tierflow's schema, this version or an older one
    LEGACY = "legacy"


def inspect_file(path: Path) -> tuple[FileKind, int]:
    """What the file at `path` is, and its schema version; read-only.

    Only SQLite opens the file (never Python's `open()`): SQLite's VFS keeps a closed
    descriptor open while the process holds locks on the file, where a plain close
    would drop them. Raises `CheckpointError` for a file tierflow must not write to."""
    if not path.exists():
        return FileKind.MISSING, 0
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint database")
    try:
        if path.stat().st_size == 0:
            return FileKind.EMPTY, 0
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from error
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"cannot read {path}: Permission denied")
    try:
        # Immutable: no lock, no -wal or -shm file created next to somebody else's file.
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            return classify(conn, path)
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error):
            raise CheckpointError(
                f"{path} is not a readable SQLite database (no SQLite header)"
            ) from error
        # A SQLite file that an immutable (lock-free) read found inconsistent: another
        # process may be creating or checkpointing it right now. Read it once more the
        # proper way, inside a read transaction; only if that fails too is it damaged.
        return _inspect_locked(path, error)


def _inspect_locked(path: Path, first: sqlite3.DatabaseError) -> tuple[FileKind, int]:
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            conn.execute("BEGIN")
            try:
                return classify(conn, path)
            finally:
                conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as error:
        raise CheckpointError(f"{path} is a damaged SQLite database ({first})") from error


def classify(conn: sqlite3.Connection, path: Path) -> tuple[FileKind, int]:
    """What the database on `conn` is; a `CheckpointError` if tierflow must not use it."""
    tables = {
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    }
    if SCHEMA_TABLE in tables:
        row = conn.execute("SELECT max(version) FROM tierflow_schema").fetchone()
        return _current(path, int(row[0] or 0))
    if not tables:
        return FileKind.EMPTY, 0
    columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
    if tables <= LEGACY_TABLES and (
        "checkpoints" not in tables or columns >= LEGACY_CHECKPOINT_COLUMNS
    ):
        return FileKind.LEGACY, 0
    raise CheckpointError(
        f"{path} is not a tierflow checkpoint database (it holds {', '.join(sorted(tables))})"
    )


def _current(path: Path, version: int) -> tuple[FileKind, int]:
    if version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint schema v{version}, newer than this tierflow's "
            f"v{SCHEMA_VERSION}: upgrade tierflow to open it"
        )
    return FileKind.CURRENT, version


def _refuse_legacy(path: Path, kind: FileKind) -> None:
    if kind is FileKind.LEGACY:
        raise CheckpointError(
            f"{path} was written by tierflow 0.1 (LangGraph's SqliteSaver layout); "
            "open it with langgraph.checkpoint.sqlite.SqliteSaver or start a new file"
        )


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    try:
        conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as error:
        raise CheckpointError(f"cannot open database {path}: {error}") from error
    # Task rows store ids packed (`codec.pack_id`); SQL that compares them uses this.
    conn.create_function("pack_id", 1, pack_id, deterministic=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        _use_wal(conn)
    except sqlite3.OperationalError as error:
        conn.close()
        raise CheckpointError(f"cannot use {path}: {error}") from error
    except sqlite3.DatabaseError as error:
        conn.close()
        raise CheckpointError(f"{path} is not a readable SQLite database ({error})") from error
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL unless it is already. SQLite does not wait (busy timeout)
    for a journal-mode switch: processes creating one new file together can find it
    locked, so this retries, briefly, for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)


def open_memory() -> sqlite3.Connection:
    """A migrated in-memory database: the process's run store when it has no file."""
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    conn.create_function("pack_id", 1, pack_id, deterministic=True)
    conn.execute("BEGIN IMMEDIATE")
    migrate(sqlite_utils.Database(conn, execute_plugins=False))
    conn.execute("COMMIT")
    return conn


def open_database(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """A checked, migrated connection to the checkpoint file at `path`.

    Only `database.acquire` calls this: a process keeps one connection per file.

    `create=False` refuses a missing file instead of creating an empty database (for
    commands that only read or resume)."""
    target = Path(path)
    kind, version = inspect_file(target)
    if kind is FileKind.MISSING:
        if not create:
            raise CheckpointError(f"no database at {target}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CheckpointError(f"cannot create {target.parent}: {error.strerror}") from error
    _refuse_legacy(target, kind)
    conn = connect(target)
    if kind is FileKind.CURRENT and version == SCHEMA_VERSION:
        return conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Again, now that nobody else can write: the read-only look above saw only the
            # main file, not what another process may have in its write-ahead log.
            _refuse_legacy(target, classify(conn, target)[0])
            migrate(sqlite_utils.Database(conn, execute_plugins=False))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        conn.close()
        raise CheckpointError(f"{target}: cannot set up checkpoint tables ({error})") from error
    except BaseException:
        conn.close()
        raise
    return conn
