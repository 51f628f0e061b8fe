"""Cumulative approval rules: a call weighed together with what already ran.

    ApprovalRule(scope="refunds:write", argument="amount_usd", sum_above=500,
                 per="principal", window_s=86_400)

holds a refund for a human when it, the other refunds of its model turn and the refunds
that already ran for the same principal in the last day would total more than $500;
`count_above=N` holds the call that would make more than N. `per` is "thread" (this
run), "principal" (every run acting for this run's principal) or "tenant" (every run of
a principal of the same tenant); `window_s=None` counts everything that ever ran.

What ran is read from the audit table — durable, shared by every thread and process:
tool rows of the rule's scope whose outcome is `ok`, or `timeout` (an abandoned call may
still have done its work), each call once. The turn's calls count before any of them
runs, so five $199 refunds in one turn are weighed as $995. A call of the turn being
decided that has an audit row already (same thread, step and call id) ran before a
crash: the replayed turn counts it, so it is not counted twice.

Fail safe: a value that can't be added up — in this call, another call of the turn or a
call that ran (a NaN, a string, a redacted value) — holds the call, since the total is
unknown. A call that doesn't carry the argument adds nothing.

Tenants: the audit row names the principal, not its tenant; a run's tenant is read from
the runs table's principal (recorded by the runner before the first step), so a run
started without a runs row counts for its tenant only through its own thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tierflow.governance.approval import ApprovalRule, Per, comparable
from tierflow.governance.tables import GovernanceTables, utc_now

# Outcomes of a call that ran: succeeded, or abandoned at its deadline while it may
# still have done the work.
RAN_OUTCOMES = ("ok", "timeout")
# A run's tenant, from the JSON the runs table keeps of its principal.
_TENANT = {
    "sqlite": "json_extract(principal, '$.tenant')",
    "postgres": "(principal::jsonb ->> 'tenant')",
}


class Call(Protocol):
    """A tool call as the rules see it (the governor's `GovernedCall`)."""

    @property
    def tool(self) -> str: ...
    @property
    def scope(self) -> str | None: ...
    @property
    def arguments(self) -> Mapping[str, Any]: ...
    @property
    def step(self) -> int: ...
    @property
    def call_id(self) -> str: ...


@dataclass(frozen=True)
class Whose:
    """Who a run is, for `per`: its thread, its principal's id and tenant."""

    thread: str
    principal: str | None = None
    tenant: str | None = None

    def describe(self, per: Per) -> str:
        if per == "thread":
            return "in this thread"
        if per == "principal":
            if self.principal is None:
                return "for runs without a principal"
            return f"for principal {self.principal}"
        if self.tenant is None:
            return "for runs without a tenant"
        return f"for tenant {self.tenant}"


class RanCalls:
    """The calls that ran, from the audit table of the run store at `db`."""

    def __init__(self, db: str | Path, *, clock: Callable[[], str] = utc_now) -> None:
        self.tables = GovernanceTables(db)
        self.clock = clock

    def arguments(
        self,
        tools: Collection[str],
        *,
        per: Per,
        whose: Whose,
        step: int,
        call_ids: Collection[str],
        window_s: float | None,
    ) -> list[dict[str, Any]]:
        """The recorded (redacted) arguments of every call of `tools` that ran for
        `whose`'s thread, principal or tenant (`per`) in the last `window_s` seconds,
        one entry per call. The turn being decided (this thread's `call_ids` at `step`)
        is left out: replayed after a crash, it counts its own calls."""
        if not tools:
            return []
        names = sorted(tools)
        with self.tables.transaction(write=False) as tx:
            sql = (
                "SELECT thread, step, call_id, arguments FROM audit WHERE kind = 'tool' "
                f"AND outcome IN ({', '.join('?' for _ in RAN_OUTCOMES)}) "
                f"AND name IN ({', '.join('?' for _ in names)})"
            )
            params: list[Any] = [*RAN_OUTCOMES, *names]
            if per == "thread":
                sql += " AND thread = ?"
                params.append(whose.thread)
            elif per == "principal" and whose.principal is None:
                sql += " AND principal IS NULL"
            elif per == "principal":
                sql += " AND principal = ?"
                params.append(whose.principal)
            else:
                tenant = _TENANT[tx.dialect]
                match = f"{tenant} = ?" if whose.tenant is not None else f"{tenant} IS NULL"
                sql += f" AND (thread = ? OR thread IN (SELECT thread FROM runs WHERE {match}))"
                params += [whose.thread] + ([] if whose.tenant is None else [whose.tenant])
            if window_s is not None:
                sql += " AND time >= ?"
                params.append(self._since(window_s))
            rows = tx.execute(sql + " ORDER BY id", params).fetchall()
        calls: dict[tuple[str, int, str], dict[str, Any]] = {}
        for thread, row_step, call_id, arguments in rows:
            if thread == whose.thread and row_step == step and call_id in call_ids:
                continue
            key = (thread, row_step, call_id or "")
            calls.setdefault(key, json.loads(arguments) if arguments else {})
        return list(calls.values())

    def _since(self, window_s: float) -> str:
        """The audit time `window_s` seconds before now, as the audit clock writes it."""
        now = datetime.fromisoformat(self.clock())
        return (now - timedelta(seconds=window_s)).isoformat(timespec="microseconds")


class Cumulative:
    """The cumulative approval rules of a policy, applied for one run."""

    def __init__(
        self,
        rules: Sequence[ApprovalRule],
        db: str | Path,
        *,
        whose: Whose,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.rules = [rule for rule in rules if rule.cumulative]
        self.ran = RanCalls(db, clock=clock)
        self.whose = whose

    def holds(
        self,
        call: Call,
        turn: Sequence[Call] = (),
        tool_scopes: Mapping[str, str | None] | None = None,
    ) -> list[str]:
        """Why the cumulative rules hold `call`: one reason per rule that does.

        `turn` is every call of the model turn that may run (this one among them or
        not); `tool_scopes` maps the agent's tools to their scopes — what ran is found
        by tool name (the audit row names the tool, not its scope); without it, the
        tools of the turn are all that is known."""
        scope = call.scope
        if scope is None:
            return []
        others = _without(turn, call)
        known = tool_scopes if tool_scopes is not None else {c.tool: c.scope for c in (*turn, call)}
        reasons = []
        for rule in self.rules:
            if not rule.applies_to(scope) or not rule.selects(call.arguments):
                continue
            if rule.argument is not None and rule.argument not in call.arguments:
                continue
            tools = [
                name for name, declared in known.items() if declared and rule.applies_to(declared)
            ]
            ran = self.ran.arguments(
                tools,
                per=rule.per,
                whose=self.whose,
                step=call.step,
                call_ids={c.call_id for c in (*turn, call)},
                window_s=rule.window_s,
            )
            same = [
                other.arguments
                for other in others
                if other.scope and rule.applies_to(other.scope) and rule.selects(other.arguments)
            ]
            held = cumulative_hold(
                rule,
                call.arguments,
                same,
                [arguments for arguments in ran if rule.selects(arguments)],
                where=self.whose.describe(rule.per),
            )
            if held is not None:
                reasons.append(f"{scope} needs approval: {held}")
        return reasons


def cumulative_hold(
    rule: ApprovalRule,
    arguments: Mapping[str, Any],
    turn: Sequence[Mapping[str, Any]],
    ran: Sequence[Mapping[str, Any]],
    *,
    where: str = "in this thread",
) -> str | None:
    """Why `rule` holds a call with `arguments`, given the arguments of the other calls
    of its turn and of the calls that ran (all of the rule's scope), or None."""
    window = "" if rule.window_s is None else f" in the last {rule.window_s:g}s"
    if rule.count_above is not None:
        count = 1 + len(turn) + len(ran)
        if count <= rule.count_above:
            return None
        return rule.reason or (
            f"{count} {rule.scope} calls — this one, {len(turn)} more in this turn and "
            f"{len(ran)} that ran {where}{window} — are more than {rule.count_above}"
        )
    name, limit = rule.argument, rule.sum_above
    if name is None or limit is None:  # the validator lets no such rule get here
        return None
    here = comparable(arguments.get(name))
    if here is None:
        return rule.reason or f"{name} is {arguments.get(name)!r}, which can't be added up"
    in_turn = _sum(name, turn)
    if isinstance(in_turn, str):
        return rule.reason or f"{name} of another call of this turn is {in_turn}"
    already = _sum(name, ran)
    if isinstance(already, str):
        return rule.reason or f"{name} of a call that ran {where} is {already}"
    total = here + in_turn + already
    if total <= limit:
        return None
    return rule.reason or (
        f"{name} would total {total:g} — {here:g} here, {in_turn:g} more in this turn, "
        f"{already:g} that ran {where}{window} — above {limit:g}"
    )


def _sum(name: str, calls: Sequence[Mapping[str, Any]]) -> float | str:
    """The sum of `name` over the calls that carry it, or — when one value can't be
    added up — what that value is."""
    total = 0.0
    for arguments in calls:
        if name not in arguments:
            continue
        value = comparable(arguments[name])
        if value is None:
            return f"{arguments[name]!r}, which can't be added up"
        total += value
    return total


def _without(turn: Sequence[Call], call: Call) -> list[Call]:
    """The turn's calls but `call` (once: the same call, or an equal one)."""
    others = list(turn)
    for index, other in enumerate(others):
        if other is call or other == call:
            del others[index]
            break
    return others
