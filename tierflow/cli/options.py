"""The options several commands share, defined once: `--db` (and its default), `--json`,
and the parse-time check of a number of days or dollars."""

from __future__ import annotations

import math
from typing import Annotated

import typer

DEFAULT_DB = ".tierflow/runs.db"

DbOption = Annotated[
    str,
    typer.Option("--db", help="Checkpoint and runs database: SQLite file or postgresql:// URL."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")]


def finite_at_least_zero(value: float | None, unit: str) -> float | None:
    """An option's number, checked while the command line is parsed: `nan`, `inf` and
    negatives are usage errors (exit 2)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"takes a finite number of {unit}, 0 or more (got {value:g})")
    return value
