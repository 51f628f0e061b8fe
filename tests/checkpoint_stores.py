"""Checkpoint stores for contract tests: a SQLite file, or a fresh Postgres database.

Postgres tests need a server: `TIERFLOW_TEST_POSTGRES` is the URL of a maintenance
database on it (`.ci/run` starts one on 127.0.0.1 and sets it). Each test gets its own
database, created for it and dropped after. Without the variable the Postgres tests
skip, saying why; in CI (`CI=true`) they fail instead, so CI can't pass without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from conftest import Result
from psycopg import sql

SERVER_VARIABLE = "TIERFLOW_TEST_POSTGRES"
STORES = ("sqlite", "postgres")


def postgres_server() -> str:
    url = os.environ.get(SERVER_VARIABLE)
    if url:
        return url
    reason = f"no PostgreSQL server: set {SERVER_VARIABLE}=postgresql://… (.ci/run starts one)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the Postgres tests, but there is {reason}")
    pytest.skip(reason)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    server = postgres_server()
    name = f"tierflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def target_fixture() -> Any:
    """A fixture giving each test a store target, once per store: a SQLite file path or
    a fresh Postgres database URL. Assign it to a name in the test module."""

    @pytest.fixture(params=STORES)
    def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        if request.param == "sqlite":
            yield str(tmp_path / "runs.db")
        else:
            with fresh_database() as url:
                yield url

    return target


def one_line_error(result: Result, *fragments: str) -> None:
    """Stricter than conftest's: exactly one line on stderr."""
    assert result.code == 1, result
    assert result.out == ""
    assert result.err.startswith("error:") and result.err.count("\n") == 1, result.err
    text = " ".join(result.err.split())
    for fragment in fragments:
        assert fragment in text, text
