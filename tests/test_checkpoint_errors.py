"""A file tierflow must not write to is refused with one clear error, and left as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from checkpoint_stores import one_line_error
from conftest import Cli
from langgraph.checkpoint.sqlite import SqliteSaver

from tierflow import CheckpointError
from tierflow import store as run_store
from tierflow.store import RunsTable, SqliteStore
from tierflow.store.schema import SCHEMA_VERSION


def tierflow_file(path: Path) -> None:
    with run_store.open(path):
        pass


def not_sqlite(path: Path) -> None:
    path.write_text("thread,checkpoint\nt1,1\n" * 200, encoding="utf-8")


def damaged(path: Path) -> None:
    tierflow_file(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # page 1 after the header: the schema
    path.write_bytes(bytes(data))


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.close()


def newer(path: Path) -> None:
    tierflow_file(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO tierflow_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()


def legacy(path: Path) -> None:
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "not sqlite": (not_sqlite, "is not a readable SQLite database"),
    "damaged": (damaged, "is a damaged SQLite database"),
    "foreign": (foreign, "is not a tierflow checkpoint database (it holds customers)"),
    "newer schema": (newer, f"newer than this tierflow's v{SCHEMA_VERSION}: upgrade tierflow"),
    "tierflow 0.1": (legacy, "was written by tierflow 0.1"),
}


def state_of(directory: Path) -> dict[str, bytes]:
    """Every file in the directory and its bytes (so a new -wal or -shm file shows)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_is_refused_and_left_untouched(kind: str, tmp_path: Path, cli: Cli) -> None:
    make, message = BAD_FILES[kind]
    path = tmp_path / "runs.db"
    make(path)
    before = state_of(tmp_path)
    with pytest.raises(CheckpointError, match=r"runs\.db") as raised:
        run_store.open(path)
    assert message in str(raised.value)
    with pytest.raises(CheckpointError, match=r"runs\.db"):
        RunsTable(path).all()
    for command in (["history", "t1"], ["runs"], ["prune", "--keep-last", "1"]):
        one_line_error(cli(*command, "--db", str(path)), message)
    assert state_of(tmp_path) == before


def test_a_directory_or_a_missing_file_is_refused(tmp_path: Path, cli: Cli) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        run_store.open(tmp_path)
    one_line_error(cli("history", "t1", "--db", str(tmp_path / "none.db")), "no database at")
    assert state_of(tmp_path) == {}


def test_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    # A file of schema v0 (tierflow's tables not yet created, only the version table).
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tierflow_schema (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.close()
    with run_store.open(path) as saver:
        assert isinstance(saver, SqliteStore)
        versions = [v for (v,) in saver.conn.execute("SELECT version FROM tierflow_schema")]
        tables = {n for (n,) in saver.conn.execute("SELECT name FROM sqlite_master")}
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert {"checkpoints", "channel_values", "blobs", "runs"} <= tables
