"""One tool call's attempts: each within the tool's timeout, retried on transient errors,
each told its attempt number, under the tool's exactly-once mechanism
(`tierflow.tools.once`): a reconcile check before a retry, or the tool's writes and the
call's record in one transaction.

`first` is the attempt the side-effect record says this is (above 1 after a crash or a
timeout left an earlier one without an outcome); in-process retries count on from it.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierflow.foundation.retry import OnRetry, RetryPolicy
from tierflow.governance.retry import acall_tool_with_retries, call_tool_with_retries
from tierflow.governance.side_effects import RecordedResult
from tierflow.nodes.executor import acall_in_time, call_in_time, in_thread
from tierflow.nodes.tool_guards import Prepared
from tierflow.nodes.transactions import in_transaction
from tierflow.tools.declare import Tool
from tierflow.tools.once import Reconcile, SameTransaction

Redact = Callable[[str], str]


@dataclasses.dataclass(frozen=True)
class Earlier:
    """An earlier attempt's result, found by a reconcile check or a transaction record:
    what the model reads instead of running the tool again."""

    outcome: RecordedResult


@dataclasses.dataclass(frozen=True)
class CallPlan:
    """What an attempt needs besides the prepared call."""

    retry: RetryPolicy | None
    store: str | Path  # the run store (a `SameTransaction` without its own connection)
    redact: Redact
    on_retry: OnRetry | None = None  # told of each retry before it waits


def attempts(prepared: Prepared, plan: CallPlan, first: int = 1) -> RecordedResult | None:
    """The call's outcome, or None when its last attempt timed out."""
    numbers = itertools.count(first)

    def attempt() -> Any:
        return one_attempt(prepared, plan, next(numbers))

    tool = prepared.tool
    try:
        value = (
            attempt()
            if plan.retry is None
            else call_tool_with_retries(attempt, plan.retry, on_retry=plan.on_retry)
        )
    except TimeoutError:  # concurrent.futures.TimeoutError is the builtin
        return None
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation
        return RecordedResult(False, failure_text(tool, error))
    return value.outcome if isinstance(value, Earlier) else RecordedResult(True, render(value))


async def aattempts(prepared: Prepared, plan: CallPlan, first: int = 1) -> RecordedResult | None:
    """The async twin of `attempts`: async tools on the running loop, sync ones (and a
    transaction's database work) in a worker thread."""
    numbers = itertools.count(first)

    async def attempt() -> Any:
        return await aone_attempt(prepared, plan, next(numbers))

    tool = prepared.tool
    try:
        value = await (
            attempt()
            if plan.retry is None
            else acall_tool_with_retries(attempt, plan.retry, on_retry=plan.on_retry)
        )
    except TimeoutError:
        return None
    except Exception as error:  # noqa: BLE001 — any tool failure is an observation
        return RecordedResult(False, failure_text(tool, error))
    return value.outcome if isinstance(value, Earlier) else RecordedResult(True, render(value))


def one_attempt(prepared: Prepared, plan: CallPlan, number: int) -> Any:
    tool, kwargs = prepared.tool, numbered(prepared, number)
    if number > 1 and isinstance(tool.once, Reconcile):
        earlier = call_in_time(_reconciled, {"prepared": prepared}, tool.timeout_s)
        if earlier is not None:
            return earlier
    if isinstance(tool.once, SameTransaction):
        transact = _transaction_job(prepared, plan, kwargs)
        return in_thread(transact).result(timeout=tool.timeout_s)
    return call_in_time(tool.fn, kwargs, tool.timeout_s)


async def aone_attempt(prepared: Prepared, plan: CallPlan, number: int) -> Any:
    tool, kwargs = prepared.tool, numbered(prepared, number)
    if number > 1 and isinstance(tool.once, Reconcile):
        earlier = await acall_in_time(_reconciled, {"prepared": prepared}, tool.timeout_s)
        if earlier is not None:
            return earlier
    if isinstance(tool.once, SameTransaction):
        return await acall_in_time(_transaction_job(prepared, plan, kwargs), {}, tool.timeout_s)
    return await acall_in_time(tool.fn, kwargs, tool.timeout_s)


def numbered(prepared: Prepared, number: int) -> dict[str, Any]:
    """The call's keyword arguments, its `ToolContext` (if it takes one) numbered. The
    model's arguments are a copy per attempt: what a tool changes in them reaches
    neither a retry nor the record of the call."""
    filled = prepared.tool.injected.names()
    kwargs = {k: v if k in filled else copy.deepcopy(v) for k, v in prepared.kwargs.items()}
    name = prepared.tool.context_param
    if name is not None:
        kwargs[name] = dataclasses.replace(prepared.context, attempt=number)
    return kwargs


def _reconciled(prepared: Prepared) -> Earlier | None:
    once = prepared.tool.once
    assert isinstance(once, Reconcile)
    found = once.check(prepared.context.idempotency_key, prepared.arguments)
    return None if found is None else Earlier(RecordedResult(True, render(found)))


def _transaction_job(
    prepared: Prepared, plan: CallPlan, kwargs: dict[str, Any]
) -> Callable[[], Earlier | str]:
    def job() -> Earlier | str:
        found, content = in_transaction(prepared, kwargs, plan.store, render, plan.redact)
        return Earlier(RecordedResult(True, content)) if found else content

    return job


def failure_text(tool: Tool, error: BaseException) -> str:
    notes = "; ".join(map(_text, getattr(error, "__notes__", [])))
    text = f"{tool.name} failed: {type(error).__name__}: {_text(error)}"
    return f"{text} ({notes})" if notes else text


def render(value: Any) -> str:
    """A tool's return value as the text the model reads: JSON, else (keys JSON can't
    hold, a cycle) its `str`. Never raises: the tool has run, its effect may be done."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=_text, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return _text(value)


def _text(value: object) -> str:
    """`str(value)`, or its default repr when its `__str__` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 — a result's own __str__ must not crash the turn
        return object.__repr__(value)
