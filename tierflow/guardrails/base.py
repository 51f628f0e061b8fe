"""The guardrail protocol: deterministic checks a final answer must pass to reach END."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Verdict:
    """`ok`, why not (in words a model can act on), and an optional repaired candidate."""

    ok: bool
    reason: str = ""
    fixed: str | None = None


@runtime_checkable
class Guardrail(Protocol):
    """A deterministic, fast, offline check.

    `name` labels the graph node (`guard:<name>`); `max_reasks` is how many times a
    failure goes back to the model before the run ends `refused`; `refusal` is the safe
    answer given then. `context` is the run's state (objective, history, plan, …).
    """

    name: str
    max_reasks: int
    refusal: str

    def check(self, candidate: str, context: Mapping[str, Any]) -> Verdict: ...

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description (for `Agent.to_json`)."""
        ...
