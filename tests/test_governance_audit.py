"""The audit log: written with redacted arguments, read back per thread, deduplicated
on replay, in the same database as the checkpoints — a SQLite file or Postgres."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from checkpoint_stores import postgres_server, target_fixture

from tierflow.errors import CheckpointError
from tierflow.governance.audit import AuditLog, AuditRecord, audit

target = target_fixture()


def ticking_clock() -> Callable[[], str]:
    """A clock one second further on at every reading."""
    ticks = count()
    return lambda: f"2026-11-26T10:00:{next(ticks):02d}+00:00"


def record(**fields: object) -> AuditRecord:
    base: AuditRecord = {
        "thread": "t1",
        "step": 2,
        "kind": "tool",
        "name": "order_details",
        "decision": "allowed",
        "outcome": "ok",
    }
    return base | fields  # type: ignore[return-value]  # `fields` holds AuditRecord keys


def test_rows_read_back_per_thread_oldest_first(target: str) -> None:
    log = AuditLog(target, clock=ticking_clock())
    log.write(record(arguments={"order_id": 1042}, latency_s=0.012, principal="alice"))
    log.write(record(thread="t2", name="refund", decision="denied", outcome="not_run"))
    log.write(record(kind="model", name="fast:gpt-4.1", tokens=812, cost_usd=0.0031))
    rows = audit(target, "t1")
    assert [r["name"] for r in rows] == ["order_details", "fast:gpt-4.1"]
    first = rows[0]
    assert first["arguments"] == {"order_id": 1042}
    assert first["principal"] == "alice"
    assert first["latency_s"] == 0.012
    assert rows[1]["tokens"] == 812
    assert rows[1]["cost_usd"] == 0.0031
    assert (rows[0]["time"], rows[1]["time"]) == (
        "2026-11-26T10:00:00+00:00",
        "2026-11-26T10:00:02+00:00",
    )
    assert len(audit(target)) == 3


def test_arguments_and_reasons_are_redacted(target: str) -> None:
    log = AuditLog(target)
    log.write(
        record(
            arguments={"api_key": "abc123", "note": "token=xyz789", "amount_usd": 20},
            outcome="error",
            reason="upstream said: Bearer abcdefghijkl rejected",
        )
    )
    (row,) = audit(target)
    assert row["arguments"] == {
        "api_key": "[REDACTED]",
        "note": "token=[REDACTED]",
        "amount_usd": 20,
    }
    assert row["reason"] == "upstream said: Bearer [REDACTED] rejected"


def test_a_replayed_event_is_logged_once(target: str) -> None:
    log = AuditLog(target)
    log.write(record(event="tool:t1:2:c1:denied", decision="denied"))
    log.write(record(event="tool:t1:2:c1:denied", decision="denied"))
    log.write(record())  # no event: always written
    log.write(record())
    assert len(audit(target)) == 3


# SQLite only: it is about a missing file, and no file left in tmp_path. The Postgres
# counterpart (a URL naming no database) follows it.
def test_reading_a_missing_database_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no database"):
        audit(tmp_path / "missing.db")
    assert list(tmp_path.iterdir()) == []


def test_reading_a_missing_postgres_database_is_an_error_and_creates_none() -> None:
    """The Postgres counterpart of the test above: a URL naming no database."""
    server = postgres_server()
    name = "tierflow_test_no_such_database"
    with pytest.raises(CheckpointError, match=f"cannot connect to .*/{name}"):
        audit(urlunsplit(urlsplit(server)._replace(path=f"/{name}")))
    with psycopg.connect(server) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        assert found.fetchone() is None


def test_the_audit_table_shares_the_checkpoint_database(target: str) -> None:
    """The governance tables go into a tierflow runs database, which the checkpoint
    store still opens afterwards."""
    from tierflow import store as run_store

    AuditLog(target).write(record())
    with run_store.open(target, create=False) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "t1"}}) is None
    assert len(audit(target)) == 1
