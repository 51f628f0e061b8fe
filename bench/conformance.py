"""Print LangGraph's checkpoint conformance report for tierflow's SQLite saver.

`tests/test_checkpoint_conformance.py` asserts the same suite passes; this shows the
report itself (`.ci/run` prints it). Exits non-zero unless the level is FULL.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate

from tierflow import store as run_store
from tierflow.store import SqliteStore


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        files = count()

        @checkpointer_test(name="tierflow SqliteStore")
        async def store() -> AsyncIterator[SqliteStore]:
            with run_store.open_sqlite(Path(directory) / f"conformance-{next(files)}.db") as saver:
                yield saver

        report = asyncio.run(validate(store))
    report.print_report()
    return 0 if report.conformance_level() == "FULL" else 1


if __name__ == "__main__":
    sys.exit(main())
