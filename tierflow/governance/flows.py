"""Flow rules: what a thread may still do once untrusted content has entered it.

Least-privilege scopes stop what the user's task didn't need; they can't stop an
injected instruction from using a scope the task *did* need (`send_money` to the
attacker's IBAN, a post to the attacker's page). Flow rules close that gap by where the
content came from. The policy names the tools whose results are untrusted — the web,
an inbox, another tenant's data — and declares what sensitive scopes need once one of
them has answered in the thread:

    Policy(
        untrusted_tools=frozenset({"read_inbox", "browse"}),
        flows=(
            FlowRule(
                scopes=frozenset({"payments:write", "messages:send"}),
                action="deny",  # or "approve": the turn's review pause
                unless_argument_in={"recipient": frozenset({"DE89370400440532013000"})},
            ),
        ),
    )

Untrusted content has entered a thread when an untrusted tool's result reached the
model: the audit table has a row of that tool in this thread whose outcome is `ok` or
`error` (an error's text reaches the model too). Read from the table, it survives
crashes, resumes and other processes. A result of the turn being decided (a call of its
step and call ids, run before a crash) doesn't count: the model wrote the turn's calls
before reading it.

`unless_argument_in` exempts a call whose every named argument is on its allow-list —
the exact string, or a non-empty list of such strings; a missing argument, another type
or a near miss is not exempt (fail safe: a human looks, or the call is refused).
`after_untrusted=False` applies the allow-list always, untrusted content or not.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from tierflow.foundation.spec import SpecModel
from tierflow.governance.permissions import covers, is_scope, is_scope_pattern
from tierflow.governance.tables import GovernanceTables

FlowAction = Literal["approve", "deny"]
# Outcomes whose content reached the model.
READ_OUTCOMES = ("ok", "error")


class FlowRule(SpecModel):
    """Calls of `scopes` after untrusted content entered the thread need a human
    (`action="approve"`) or are refused (`"deny"`), unless their arguments are on
    `unless_argument_in`'s allow-lists."""

    scopes: frozenset[str]
    after_untrusted: bool = True
    action: FlowAction = "approve"
    unless_argument_in: dict[str, frozenset[str]] = Field(default_factory=dict)
    reason: str = ""

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: frozenset[str]) -> frozenset[str]:
        if not scopes:
            raise ValueError("name the scopes the rule governs, e.g. 'payments:write'")
        for scope in scopes:
            if not is_scope_pattern(scope):
                raise ValueError(f"{scope!r} is not a scope or scope pattern (resource:action)")
        return scopes

    @field_validator("unless_argument_in")
    @classmethod
    def _allow_lists(cls, lists: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        for argument, allowed in lists.items():
            if not allowed:
                raise ValueError(f"the allow-list of {argument!r} is empty: leave it out")
        return lists

    @model_validator(mode="after")
    def _does_something(self) -> FlowRule:
        if not self.after_untrusted and not self.unless_argument_in:
            raise ValueError(
                "a rule with after_untrusted=False needs unless_argument_in (to hold or "
                "refuse every call of a scope, use an ApprovalRule or a grant's deny)"
            )
        return self

    @field_serializer("scopes")
    def _sorted_scopes(self, scopes: frozenset[str]) -> list[str]:
        return sorted(scopes)

    @field_serializer("unless_argument_in")
    def _sorted_lists(self, lists: dict[str, frozenset[str]]) -> dict[str, list[str]]:
        return {argument: sorted(lists[argument]) for argument in sorted(lists)}

    def applies_to(self, scope: str) -> bool:
        return is_scope(scope) and any(covers(pattern, scope) for pattern in self.scopes)

    def off_list(self, arguments: Mapping[str, Any]) -> str | None:
        """What keeps the call off the allow-lists (None: exempt). No allow-list: every
        call of the scopes is concerned."""
        if not self.unless_argument_in:
            return ""
        for argument in sorted(self.unless_argument_in):
            allowed = self.unless_argument_in[argument]
            if argument not in arguments:
                return f"{argument} is missing"
            value = arguments[argument]
            if not _on_list(value, allowed):
                return f"{argument} {value!r} is not on its allow-list"
        return None


def _on_list(value: Any, allowed: Collection[str]) -> bool:
    if isinstance(value, str):
        return value in allowed
    if isinstance(value, list | tuple) and value:
        return all(isinstance(item, str) and item in allowed for item in value)
    return False


@dataclass(frozen=True)
class FlowHit:
    """A flow rule's decision on a call: hold it for a human or refuse it, and why."""

    action: FlowAction
    reason: str


def flow_decision(
    rules: Sequence[FlowRule],
    scope: str | None,
    arguments: Mapping[str, Any],
    sources: Sequence[str] | None,
) -> FlowHit | None:
    """What the flow rules decide on a call of `scope`, given the untrusted tools whose
    content entered the thread (`sources`; None: not looked up — then only rules that
    apply without untrusted content decide). A refusal wins over a hold."""
    if scope is None:
        return None
    hits = []
    for rule in rules:
        if not rule.applies_to(scope) or (rule.after_untrusted and not sources):
            continue
        off = rule.off_list(arguments)
        if off is None:
            continue
        why = []
        if rule.after_untrusted and sources:
            why.append(f"untrusted content entered this thread (from {', '.join(sources)})")
        if off:
            why.append(off)
        hits.append(FlowHit(rule.action, rule.reason or "; ".join(why)))
    if not hits:
        return None
    action: FlowAction = "deny" if any(hit.action == "deny" for hit in hits) else "approve"
    reasons = "; ".join(dict.fromkeys(hit.reason for hit in hits if hit.action == action))
    verb = "is refused" if action == "deny" else "needs approval"
    return FlowHit(action, f"{scope} {verb}: {reasons}")


class UntrustedInput:
    """Which untrusted tools have answered in a thread, from the audit table of the run
    store at `db`."""

    def __init__(self, db: str | Path) -> None:
        self.tables = GovernanceTables(db)

    def sources(
        self, thread: str, tools: Collection[str], *, step: int, call_ids: Collection[str]
    ) -> list[str]:
        """The untrusted `tools` whose result reached the model in `thread`, but for the
        turn being decided (its `call_ids` at `step`: run before a crash, replayed)."""
        if not tools:
            return []
        names = sorted(tools)
        with self.tables.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT name, step, call_id FROM audit WHERE thread = ? AND kind = 'tool' "
                f"AND outcome IN ({', '.join('?' for _ in READ_OUTCOMES)}) "
                f"AND name IN ({', '.join('?' for _ in names)})",
                [thread, *READ_OUTCOMES, *names],
            ).fetchall()
        return sorted(
            {str(name) for name, at, call_id in rows if not (at == step and call_id in call_ids)}
        )


class Flows:
    """The flow rules of a policy, applied for one thread."""

    def __init__(
        self,
        rules: Sequence[FlowRule],
        untrusted_tools: Collection[str],
        db: str | Path,
        *,
        thread: str,
    ) -> None:
        self.rules = tuple(rules)
        self.untrusted_tools = frozenset(untrusted_tools)
        self.input = UntrustedInput(db)
        self.thread = thread

    def check(
        self,
        scope: str | None,
        arguments: Mapping[str, Any],
        *,
        step: int,
        call_ids: Collection[str] = (),
    ) -> FlowHit | None:
        """The flow rules' decision on a call of the turn at `step` whose calls are
        `call_ids`; the audit table is read only when a rule that waits for untrusted
        content concerns the call."""
        if scope is None:
            return None
        waiting = [
            rule
            for rule in self.rules
            if rule.after_untrusted
            and rule.applies_to(scope)
            and rule.off_list(arguments) is not None
        ]
        sources = (
            self.input.sources(self.thread, self.untrusted_tools, step=step, call_ids=call_ids)
            if waiting
            else None
        )
        return flow_decision(self.rules, scope, arguments, sources)


def flow_denial_message(tool: str, reason: str) -> str:
    """What the model reads when a flow rule refused its call."""
    return (
        f"Not run: {tool} — {reason}. This is a policy decision, not an error; do not "
        "retry the call or work around it — tell the user what was not done and that it "
        "needs to be done outside this conversation."
    )
