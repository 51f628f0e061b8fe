"""Nothing is stored unredacted: the support desk run with a corpus of secrets and
personal data in every place a run carries text (tests/agents/secret_desk.py: the
request, tool arguments, a tool result, a tool error, a held refund, the reviewer's
reason, the plan, the answer), then every stored byte scanned for them.

Stored bytes: the SQLite file with its `-wal` and `-shm` (read while the store is open,
and after), every row of every table with compressed values inflated; on Postgres every
row of every table as text and as bytes; every log record of the run. The scan looks
for each value, its JSON-escaped form and every 12-character window of it."""

from __future__ import annotations

import logging
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from agents import secret_desk as desk
from checkpoint_stores import target_fixture
from psycopg import sql

from tierflow.governance.redact import Redactor
from tierflow.runs.report import RunReport
from tierflow.runs.runner import Runner
from tierflow.store.codec import ZDICT_V1
from tierflow.store.targets import is_postgres

target = target_fixture()
# The control: an agent whose policy masks nothing.
NOTHING = Redactor(patterns=(), sensitive_names=(), known_secrets=False, pii=())


@pytest.fixture(autouse=True)
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shop is the refund tool's own system, not tierflow's store: outside the scan.
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "shop" / "shop.db"))


def run_corpus(db: str, agent: Any = desk.agent) -> tuple[RunReport, RunReport, bytes]:
    """Run the corpus request to its held refund, approve it, and return both reports
    and (SQLite) the files' bytes read while the store was still open."""
    runner = Runner(agent, db=db)
    held = runner.run(desk.REQUEST, "t1")
    while_open = b"" if is_postgres(db) else files_bytes(Path(db))
    done = runner.resume("t1", desk.REVIEW)
    return held, done, while_open


def files_bytes(db: Path) -> bytes:
    paths = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    return b"\n".join(p.read_bytes() for p in paths if p.exists())


def inflated(value: bytes) -> Iterator[bytes]:
    """`value`, and what it inflates to: the store zlib-compresses blobs, and checkpoint
    payloads after a one-byte tag, against a preset dictionary."""
    yield value
    for data, zdict in ((value, b""), (value[1:], b""), (value[1:], ZDICT_V1)):
        try:
            unpacker = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
            yield unpacker.decompress(data) + unpacker.flush()
        except zlib.error:
            continue


def sqlite_rows(db: Path) -> bytes:
    parts: list[bytes] = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for cell in row:
                    if isinstance(cell, bytes):
                        parts += inflated(cell)
                    else:
                        parts.append(str(cell).encode())
    return b"\n".join(parts)


def postgres_rows(url: str) -> bytes:
    """Every row of every table, as text (`row::text`) and, for bytea cells, as bytes."""
    parts: list[bytes] = []
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        for table in tables:
            name = sql.Identifier(table)
            for (text,) in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(name)):
                parts.append(text.encode())
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(name)):
                parts += [bytes(c) for c in row if isinstance(c, bytes | memoryview)]
    assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "runs", "audit"} <= set(tables)
    return b"\n".join(parts)


def stored(db: str) -> bytes:
    if is_postgres(db):
        return postgres_rows(db)
    return files_bytes(Path(db)) + b"\n" + sqlite_rows(Path(db))


def test_the_corpus_has_a_secret_in_every_place() -> None:
    placed = desk.secrets()
    assert len(placed) >= 40
    assert {name.split(":")[0] for name in placed} == set(desk.PLACES)


def test_no_placed_secret_is_stored_or_logged(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    held, done, while_open = run_corpus(target)
    assert held.status == "interrupted"
    assert done.status == "done", done.error
    scanned = stored(target) + while_open + caplog.text.encode()
    assert desk.leaked(scanned) == []
    # The masks are there instead, saying what they replaced.
    for label in (b"[REDACTED:github_token]", b"[REDACTED:card]", b"[REDACTED:stripe_access_key]"):
        assert label in scanned
    # The run did carry the secrets: the caller's answer holds them (the PII guard
    # masked the personal data in it, as it does for any answer).
    answer = desk.CORPUS["answer"]
    assert done.answer is not None
    assert answer["stripe"] in done.answer and answer["github_pat"] in done.answer


def test_the_scan_finds_the_corpus_when_nothing_is_masked(target: str) -> None:
    """The control: with a policy that masks nothing the same run leaves the corpus in
    the store, so the test above would see a redactor that stopped working."""
    assert desk.agent.policy is not None
    policy = desk.agent.policy.model_copy(update={"redaction": NOTHING})
    agent = desk.agent.model_copy(update={"policy": policy})
    _, done, while_open = run_corpus(target, agent)
    assert done.status == "done", done.error
    found = desk.leaked(stored(target) + while_open)
    assert len(found) >= 40
    assert {name.split(":")[0] for name in found} == set(desk.PLACES)
