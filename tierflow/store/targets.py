"""What a `--db` target names: a SQLite file, or a Postgres database by URL."""

from __future__ import annotations

import re
from pathlib import Path

URL_SCHEMES = ("postgresql://", "postgres://")
# The process's in-memory run store: governance tables for a governed agent compiled
# without a database (`InMemorySaver`, `langgraph dev`). Gone when the process ends.
MEMORY = ":memory:"


def is_memory(target: str | Path) -> bool:
    return str(target) == MEMORY


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def describe(target: str | Path) -> str:
    return redact(target) if isinstance(target, str) and is_postgres(target) else str(target)
