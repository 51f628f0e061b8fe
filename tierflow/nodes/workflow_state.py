"""A workflow's state: the request, each step's output and status, the model calls of
every agent step (tagged with the step), and how the workflow ended.

Its keys that an agent's state also has (`messages`, `objective`, `plan`, `calls`,
`verdicts`, `status`, `answer`, `error`) mean the same there, so what reads an agent's
run — `RunReport`, `inspect`, the per-tier tables — reads a workflow's. Parallel steps
write in one superstep, so every key a step writes has a reducer; a new request resets
them (`RESET`).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from tierflow.nodes.state import GuardRecord, ModelCall, PlanStep, Status
from tierflow.routing.router import RouteDecision

RESET = "__reset__"
HALTED = frozenset({"refused", "failed", "budget_exceeded"})


def merge_results(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Step outputs by step name; `{RESET: True, ...}` starts over."""
    if new.get(RESET):
        return {k: v for k, v in new.items() if k != RESET}
    return {**(old or {}), **new}


def merge_plan(old: list[PlanStep] | None, new: list[PlanStep]) -> list[PlanStep]:
    """Step statuses in declaration order; an item named `RESET` starts over."""
    merged = list(old or [])
    for item in new:
        if item["step"] == RESET:
            merged = []
            continue
        at = next((i for i, kept in enumerate(merged) if kept["step"] == item["step"]), None)
        if at is None:
            merged.append(item)
        else:
            merged[at] = item
    return merged


def merge_status(old: Status | None, new: Status) -> Status:
    """`running` (a new request) resets; otherwise the first ending sticks — two parallel
    branches may both fail in one superstep."""
    if new == "running" or old in (None, "running"):
        return new
    if old == "done" and new in HALTED:
        return new
    return old


def first_set(old: str | None, new: str | None) -> str | None:
    """None resets; otherwise the first value written stays (the first error, say)."""
    return new if new is None or old is None else old


def merge_counts(old: dict[str, int] | None, new: dict[str, int]) -> dict[str, int]:
    if new.get(RESET):
        return {k: v for k, v in new.items() if k != RESET}
    return {**(old or {}), **new}


class WorkflowState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    request: str
    objective: str
    results: Annotated[dict[str, Any], merge_results]
    plan: Annotated[list[PlanStep], merge_plan]
    loops: Annotated[dict[str, int], merge_counts]
    # An agent step's node → why its last attempt failed ("" when it succeeded).
    failures: Annotated[dict[str, str], merge_results]
    calls: Annotated[list[ModelCall], operator.add]
    routes: Annotated[list[RouteDecision], operator.add]
    verdicts: Annotated[list[GuardRecord], operator.add]
    status: Annotated[Status, merge_status]
    answer: Annotated[str | None, first_set]
    error: Annotated[str | None, first_set]


class WorkflowInput(TypedDict):
    """What a run is sent: the user's message, as for an agent."""

    messages: Annotated[list[AnyMessage], add_messages]


def view_of(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a step's functions read: the request, the objective and the outputs so far —
    read-only, and the outputs a copy, so a function can't change the workflow's state
    behind its back (not even inside a step's output)."""
    return MappingProxyType(
        {
            "request": state.get("request", ""),
            "objective": state.get("objective", ""),
            "results": MappingProxyType(copy.deepcopy(dict(state.get("results", {})))),
        }
    )


def halted(state: Mapping[str, Any]) -> bool:
    return state.get("status") in HALTED
