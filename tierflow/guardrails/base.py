"""The guardrail protocol: deterministic checks on a final answer or a tool's arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

# What happens when a check fails:
#   reask     — the reason goes back to the same tier, up to `max_reasks` times, then refuse
#   escalate  — the request is re-routed to the next stronger tier, then refuse
#   fix       — the verdict's `fixed` candidate replaces the failing one and the run goes on
#   refuse    — the run ends `refused` with `refusal` as the answer and the reason
#   interrupt — the run pauses for a human (LangGraph `interrupt()`), who approves, rejects
#               or edits
OnFail = Literal["reask", "escalate", "fix", "refuse", "interrupt"]
ON_FAIL_POLICIES: tuple[str, ...] = get_args(OnFail)


@dataclass(frozen=True)
class Verdict:
    """`ok`, why not (in words a model can act on), and an optional repaired candidate."""

    ok: bool
    reason: str = ""
    fixed: str | None = None


@runtime_checkable
class Guardrail(Protocol):
    """A deterministic, fast, offline check.

    `name` labels the graph node (`guard:<name>`); `on_fail` is the policy above;
    `max_reasks` bounds reasks and escalations; `refusal` is the safe answer given when
    the run ends refused. `context` is the run's state (objective, history, plan, tool
    results …) or None when a check runs outside a run. `check` never raises for any
    candidate text: a problem is a failing verdict.
    """

    name: str
    on_fail: OnFail
    max_reasks: int
    refusal: str

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict: ...

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description (for `Agent.to_json`)."""
        ...


DEFAULT_REFUSAL = "Sorry, I can't give a reliable answer to this request."


class GuardrailBase:
    """Shared settings of the built-in guardrails; subclasses implement `check` and
    `describe` (their own part of `spec`)."""

    kind: str = "guardrail"

    def __init__(
        self,
        *,
        name: str,
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = DEFAULT_REFUSAL,
    ) -> None:
        if on_fail not in ON_FAIL_POLICIES:
            raise ValueError(f"on_fail must be one of {ON_FAIL_POLICIES}, not {on_fail!r}")
        if max_reasks < 0:
            raise ValueError("max_reasks must be >= 0")
        self.name = name
        self.on_fail: OnFail = on_fail
        self.max_reasks = max_reasks
        self.refusal = refusal

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "on_fail": self.on_fail,
            "max_reasks": self.max_reasks,
            **self.describe(),
        }
