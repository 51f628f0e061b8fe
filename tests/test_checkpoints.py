"""`tierflow.store`: the SQLite store and the runs table."""

from __future__ import annotations

import sqlite3
from itertools import count
from pathlib import Path

import pytest

from tierflow import CheckpointError
from tierflow import store as run_store
from tierflow.store import RunsTable, SqliteStore
from tierflow.store.sqlite import BUSY_TIMEOUT_MS


def test_open_gives_a_wal_sqlite_saver_that_closes_with_its_context(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "runs.db"
    with run_store.open(path) as saver:
        assert isinstance(saver, SqliteStore)
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
        tables = {r[0] for r in saver.conn.execute("SELECT name FROM sqlite_master")}
        assert {"checkpoints", "channel_values", "writes", "blobs", "runs"} <= tables
    with pytest.raises(sqlite3.ProgrammingError):
        saver.conn.execute("SELECT 1")


def test_open_refuses_a_file_that_is_not_sqlite_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 50, encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="not a readable SQLite database"):
        run_store.open(path)
    assert path.read_bytes() == before


def test_open_without_create_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(CheckpointError, match="no database at"):
        run_store.open(path, create=False)
    assert not path.exists()


@pytest.fixture
def runs(tmp_path: Path) -> RunsTable:
    ticks = count(1)
    return RunsTable(tmp_path / "runs.db", clock=lambda: f"t{next(ticks):03d}")


def test_runs_table_records_a_run_from_start_to_end(runs: RunsTable) -> None:
    runs.start("a", agent="support", source="/x.py:agent", request="hello")
    runs.update("a", status="done", answer="hi", tiers=["fast", "reasoning"], cost_usd=0.25)
    row = runs.get("a")
    assert row is not None
    assert (row["status"], row["answer"], row["tiers"], row["cost_usd"]) == (
        "done",
        "hi",
        ["fast", "reasoning"],
        0.25,
    )
    assert (row["started_at"], row["updated_at"]) == ("t001", "t002")
    # A new request on the same thread keeps its start time.
    runs.start("a", agent="support", source="/x.py:agent", request="again")
    row = runs.get("a")
    assert row is not None
    # Marked running, but no process holds its lease: it shows as crashed.
    assert (row["status"], row["request"], row["started_at"]) == ("crashed", "again", "t001")
    assert [r["thread"] for r in runs.all()] == ["a"]


def test_runs_table_rejects_unknown_threads_and_columns(runs: RunsTable) -> None:
    with pytest.raises(CheckpointError, match="unknown thread 'ghost'"):
        runs.update("ghost", status="done")
    runs.start("a", agent="x", source="s", request="r")
    with pytest.raises(ValueError, match="unknown runs columns"):
        runs.update("a", colour="blue")
    assert runs.get("ghost") is None
