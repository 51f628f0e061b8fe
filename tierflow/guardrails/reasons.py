"""How a guard words a failing verdict's reason: each problem once, in the order found,
and a quoted excerpt clipped, so one huge value can't drown the rest."""

from __future__ import annotations


class Problems(list[str]):
    """A check's problems in the order found; a mistake repeated is said once."""

    def add(self, problem: str) -> None:
        if problem not in self:
            self.append(problem)


def clip(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
