"""LangGraph's own checkpoint conformance suite, run against tierflow's SQLite saver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import EXTENDED_CAPABILITIES

from tierflow import store as run_store
from tierflow.store import SqliteStore


def test_the_sqlite_store_passes_every_base_and_extended_capability(tmp_path: Path) -> None:
    files = count()

    @checkpointer_test(name="tierflow SqliteStore")
    async def store() -> AsyncIterator[SqliteStore]:
        # A fresh file for each capability's suite, as the suite expects.
        with run_store.open_sqlite(tmp_path / f"conformance-{next(files)}.db") as saver:
            yield saver

    report = asyncio.run(validate(store))
    failures = {name: r.failures for name, r in report.results.items() if r.passed is not True}
    assert report.conformance_level() == "FULL", failures
    assert {c.value for c in EXTENDED_CAPABILITIES} <= {
        name for name, result in report.results.items() if result.detected and result.passed
    }
