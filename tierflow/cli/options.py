"""The options several commands share, defined once: `--db` (and its default), `--json`,
`--arg` (an agent factory's arguments), and the parse-time check of a number of days or
dollars."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

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


def _key_values(pairs: list[str] | None) -> list[str] | None:
    """`--arg`s, checked while the command line is parsed: KEY=VALUE, each KEY once."""
    keys: set[str] = set()
    for pair in pairs or []:
        key, equals, _ = pair.partition("=")
        if not equals or not key.isidentifier():
            raise typer.BadParameter(f"takes KEY=VALUE, KEY a parameter name (got {pair!r})")
        if key in keys:
            raise typer.BadParameter(f"{key} given twice")
        keys.add(key)
    return pairs


ArgsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        metavar="KEY=VALUE",
        help="An argument of the agent factory FILE:FUNCTION (repeatable): VALUE is read as "
        'JSON when it parses (3, true, [1,2], "007"), else as text. Recorded with the run.',
        callback=_key_values,
    ),
]


def factory_args(pairs: list[str] | None) -> dict[str, Any] | None:
    """The factory's arguments from `--arg`s (None when there are none)."""
    if not pairs:
        return None
    return {key: _value(text) for key, _, text in (pair.partition("=") for pair in pairs)}


def _value(text: str) -> Any:
    """JSON when it parses (NaN and Infinity stay text), else the text itself."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text
