"""Labelled routing data: one request a row, and whether each tier's answer was right.

The format of `../shared/data/routing/`: columns `prompt, weak_correct, strong_correct`
(0 or 1), optionally `weak_response_chars, strong_response_chars` (the answers' lengths,
about four characters a token) and any other column (e.g. `subject`, for a split by
group). Every problem is a `RoutingDataError` naming the file, and the row or column.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierflow.errors import RoutingDataError

WEAK = "weak_correct"
STRONG = "strong_correct"
WEAK_CHARS = "weak_response_chars"
STRONG_CHARS = "strong_response_chars"
CHARS_PER_TOKEN = 4

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RoutingData:
    """Requests and the two tiers' outcomes on them, row by row."""

    prompts: list[str]
    weak_correct: IntArray
    strong_correct: IntArray
    # Output tokens of each tier's answer, when the data records its length.
    weak_output_tokens: FloatArray | None = None
    strong_output_tokens: FloatArray | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | IntArray) -> RoutingData:
        index = np.asarray(rows, dtype=np.int64)

        def pick(values: FloatArray | None) -> FloatArray | None:
            return None if values is None else values[index]

        return RoutingData(
            prompts=[self.prompts[i] for i in index],
            weak_correct=self.weak_correct[index],
            strong_correct=self.strong_correct[index],
            weak_output_tokens=pick(self.weak_output_tokens),
            strong_output_tokens=pick(self.strong_output_tokens),
            columns={name: [values[i] for i in index] for name, values in self.columns.items()},
        )

    def column(self, name: str) -> list[str]:
        """Another column of the file (e.g. `subject`), for a split by group."""
        if name not in self.columns:
            raise RoutingDataError(
                f"no column {name!r} to group by; the data has {sorted(self.columns)}"
            )
        return self.columns[name]


def load_routing_csv(path: str | Path, text_column: str = "prompt") -> RoutingData:
    """Read and check a labelled CSV file (see the module's docstring)."""
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            # MMLU prompts are long (a reading passage and four choices).
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise RoutingDataError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RoutingDataError(f"{source}: can't read it as UTF-8 CSV ({error})") from None
    if not header:
        raise RoutingDataError(f"{source}: the file is empty (expected a header row)")
    missing = [c for c in (text_column, WEAK, STRONG) if c not in header]
    if missing:
        raise RoutingDataError(
            f"{source}: missing column(s) {missing}; the header has {header}"
            + (" (choose the text column with --text-column)" if text_column in missing else "")
        )
    if not rows:
        raise RoutingDataError(f"{source}: the file has a header but no rows")
    return RoutingData(
        prompts=[row[text_column] or "" for row in rows],
        weak_correct=_labels(source, rows, WEAK),
        strong_correct=_labels(source, rows, STRONG),
        weak_output_tokens=_tokens(source, rows, header, WEAK_CHARS),
        strong_output_tokens=_tokens(source, rows, header, STRONG_CHARS),
        columns={
            name: [row[name] or "" for row in rows]
            for name in header
            if name not in (text_column, WEAK, STRONG)
        },
    )


def _labels(source: Path, rows: list[dict[str, str]], column: str) -> IntArray:
    values = np.empty(len(rows), dtype=np.int64)
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        raw = (row.get(column) or "").strip()
        if raw not in ("0", "1"):
            raise RoutingDataError(
                f"{source}: row {number}, column {column!r}: expected 0 or 1, got {raw!r}"
            )
        values[number - 2] = int(raw)
    return values


def _tokens(
    source: Path, rows: list[dict[str, str]], header: list[str], column: str
) -> FloatArray | None:
    if column not in header:
        return None
    values = np.empty(len(rows), dtype=np.float64)
    for number, row in enumerate(rows, start=2):
        raw = (row.get(column) or "").strip()
        try:
            chars = float(raw)
        except ValueError:
            chars = -1.0
        if not chars >= 0:  # also rejects NaN
            raise RoutingDataError(
                f"{source}: row {number}, column {column!r}: expected a length in "
                f"characters, got {raw!r}"
            )
        values[number - 2] = chars / CHARS_PER_TOKEN
    return values
