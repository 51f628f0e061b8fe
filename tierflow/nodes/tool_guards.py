"""Guardrails before a tool runs: a call's arguments are checked first.

A failing check blocks the call (the reason is the model's observation), repairs it
(`on_fail="fix"` with a `fixed` value), or holds it for a human (`on_fail="interrupt"`).
Checks run before any tool of the turn runs, so a review pause never repeats work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import ValidationError

from tierflow.nodes.state import AgentState, GuardRecord, ToolResult
from tierflow.nodes.tools import ALL_ARGUMENTS, Tool, ToolContext

Prepared = tuple[Tool, dict[str, Any], ToolContext]


class HeldCall(TypedDict):
    """One call held for a human: what it would do and why — `held_by` says whether a
    guardrail (`guard` names it) or the policy's approval rule (`guard` is
    `approval:<scope>`) held it, or both; `reason` gives every reason. A call that ran
    and whose result an output guard holds carries the `result` the model would read
    (its `call_id` is the call's with `:result` appended; see `output_guards`)."""

    tool: str
    call_id: str
    arguments: dict[str, Any]
    guard: str
    reason: str
    held_by: list[Literal["guard", "approval"]]
    result: NotRequired[str]


class ToolReviewRequest(TypedDict):
    kind: Literal["tool_review"]
    calls: list[HeldCall]


@dataclass(frozen=True)
class Screened:
    """A call after its checks: ready to run, blocked (a result), or held for review."""

    item: Prepared | ToolResult
    records: list[GuardRecord]
    held: HeldCall | None = None


def visible_arguments(prepared: Prepared) -> dict[str, Any]:
    """The arguments the model sent (without the injected ToolContext)."""
    tool, kwargs, _ = prepared
    return {k: v for k, v in kwargs.items() if k != tool.context_param}


def blocked(prepared: Prepared, message: str) -> ToolResult:
    tool, _, context = prepared
    return ToolResult(call_id=context.call_id, name=tool.name, ok=False, content=message)


def screen(prepared: Prepared, state: AgentState) -> Screened:
    """Run the tool's argument guardrails in declaration order."""
    tool, kwargs, context = prepared
    records: list[GuardRecord] = []
    for argument, guard in tool.guards.items():
        arguments = visible_arguments((tool, kwargs, context))
        candidate = (
            json.dumps(arguments, default=str, sort_keys=True)
            if argument == ALL_ARGUMENTS
            else str(kwargs[argument])
        )
        verdict = guard.check(candidate, state)
        label = f"{tool.name}:{guard.name}"
        what = "its arguments" if argument == ALL_ARGUMENTS else f"argument {argument!r}"
        repaired = (
            _with_fix(tool, kwargs, argument, verdict.fixed) if verdict.fixed is not None else None
        )
        if verdict.ok:
            policy = "pass"
            kwargs = kwargs if repaired is None else repaired
        elif guard.on_fail == "fix" and repaired is not None:
            policy = "fix"
            kwargs = repaired
        elif guard.on_fail == "interrupt":
            policy = "interrupt"
        else:
            policy = "block"  # reask, escalate, refuse — or a fix that doesn't fit
        records.append(
            GuardRecord(
                guard=label,
                ok=verdict.ok,
                reason=verdict.reason,
                step=state.get("steps", 0),
                policy=policy,
            )
        )
        if policy == "block":
            return Screened(
                blocked(
                    (tool, kwargs, context),
                    f"Blocked before running: the {guard.name!r} check rejected {what} of "
                    f"{tool.name}: {verdict.reason}. Change the call and try again.",
                ),
                records,
            )
        if policy == "interrupt":
            held = HeldCall(
                tool=tool.name,
                call_id=context.call_id,
                arguments=visible_arguments((tool, kwargs, context)),
                guard=label,
                reason=verdict.reason,
                held_by=["guard"],
            )
            return Screened((tool, kwargs, context), records, held)
    return Screened((tool, kwargs, context), records)


def _with_fix(
    tool: Tool, kwargs: Mapping[str, Any], argument: str, fixed: str
) -> dict[str, Any] | None:
    """The arguments with the guard's repair applied, re-validated; None if invalid."""
    arguments = {k: v for k, v in kwargs.items() if k != tool.context_param}
    try:
        if argument == ALL_ARGUMENTS:
            replaced = json.loads(fixed)
            if not isinstance(replaced, dict):
                return None
            arguments = replaced
        else:
            arguments[argument] = fixed
        parsed = tool.args_schema.model_validate(arguments)
    except (ValidationError, json.JSONDecodeError):
        return None
    repaired = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    if tool.context_param is not None:
        repaired[tool.context_param] = kwargs[tool.context_param]
    return repaired


def apply_review(
    screened: Sequence[Screened], decision: Mapping[str, Any]
) -> list[Prepared | ToolResult]:
    """Held calls run if the reviewer approved, and are blocked with their reason if not."""
    approved = decision.get("action") == "approve"
    why = decision.get("reason") or "no reason given"
    items: list[Prepared | ToolResult] = []
    for entry in screened:
        if entry.held is None or approved or not isinstance(entry.item, tuple):
            items.append(entry.item)
        else:
            items.append(
                blocked(entry.item, f"Rejected by a human reviewer: {why}. Do not retry it.")
            )
    return items
