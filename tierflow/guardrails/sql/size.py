"""An upper bound on the size of a value a query builds, and the limits it must stay in.

A bound is linear: `data` times the longest stored value, plus `const` bytes, plus (in a
recursive CTE) `step` times the previous row's value. Sizes add up where a value joins
its parts (`a || b`, `concat`), and take the largest where it is one of them (`coalesce`,
`CASE`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_VALUE_BYTES = 1_000_000  # bytes of a value built from constants
MAX_GROWTH = 100  # times the longest stored value

_NUMBER = 32.0  # bytes of a number as text (a double prints in at most ~25)


@dataclass(frozen=True, slots=True)
class Size:
    """An upper bound on a value's length: `data` times the longest stored value, plus
    `const` bytes, plus `step` times the previous row's value (a recursive CTE's step)."""

    data: float = 0.0
    const: float = 0.0
    step: float = 0.0

    def __add__(self, other: Size) -> Size:
        return Size(self.data + other.data, self.const + other.const, self.step + other.step)

    def times(self, factor: float) -> Size:
        return Size(self.data * factor, self.const * factor, self.step * factor)

    def most(self, other: Size) -> Size:
        return Size(
            max(self.data, other.data), max(self.const, other.const), max(self.step, other.step)
        )

    @property
    def too_large(self) -> bool:
        return self.data > MAX_GROWTH or self.const > MAX_VALUE_BYTES


STORED = Size(data=1.0)  # a stored value
SHORT = Size(const=_NUMBER)  # a number, a truth value, a short fixed-size string


def total(sizes: Iterable[Size]) -> Size:
    """The size of the parts joined together."""
    result = Size()
    for size in sizes:
        result = result + size
    return result


def largest(sizes: Iterable[Size]) -> Size:
    """The size of whichever part it is."""
    result = Size()
    for size in sizes:
        result = result.most(size)
    return result
