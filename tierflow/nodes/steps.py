"""The nodes of a compiled workflow: its start, one per step, the joins of parallel
steps, the counters of loops, its guards and its finish.

An agent step's node invokes the agent's compiled graph as a subgraph: it inherits the
workflow's checkpointer, so a step interrupted or killed half-way resumes inside the
agent where it stopped (LangGraph keys the subgraph's checkpoints by the node's task).
The step's reminder and budget reach the agent's nodes through the run's config.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt

from tierflow.governance.audit import AuditLog, AuditRecord
from tierflow.governance.budget import Budgets, step_key
from tierflow.governance.idempotency import idempotency_key
from tierflow.governance.reviews import rejection_reason, review_outcome
from tierflow.governance.side_effects import CallSite, RecordedResult, SideEffects
from tierflow.guardrails.base import Guardrail
from tierflow.models.messages import last_request_index, text_of
from tierflow.nodes.context import STEP_BUDGET, run_context, store_of, thread_of
from tierflow.nodes.remind import WORKFLOW_REMINDER
from tierflow.nodes.state import ModelCall, PlanStep
from tierflow.nodes.workflow_state import HALTED, RESET, view_of
from tierflow.testing.faults import crash_point

Update = dict[str, Any]


def status_of(step: str, status: str) -> list[PlanStep]:
    return [PlanStep(step=step, status=status)]  # type: ignore[typeddict-item]  # "skipped", "failed" too


def start_node(objective: str, steps: Sequence[str]) -> Callable[[Mapping[str, Any]], Update]:
    """A new request: the request's text, every step pending, nothing decided yet."""

    def start(state: Mapping[str, Any]) -> Update:
        messages = state.get("messages", [])
        index = last_request_index(messages)
        if index is None:
            raise ValueError("the run has no user request: send a human message first")
        pending = [PlanStep(step=name, status="pending") for name in steps]
        return {
            "request": text_of(messages[index]),
            "objective": objective,
            "results": {RESET: True},
            "loops": {RESET: 1},
            "failures": {RESET: True},
            "plan": [PlanStep(step=RESET, status="pending"), *pending],
            "status": "running",
            "answer": None,
            "error": None,
        }

    return start


@dataclass(frozen=True)
class AgentCall:
    """How an agent step runs: its compiled agent, and what the workflow tells it."""

    step: str
    goal: str
    workflow: str
    subgraph: Any  # the agent's CompiledStateGraph, compiled without a checkpointer
    input: Callable[[Mapping[str, Any]], Any] | None
    as_json: bool
    budget_usd: float | None
    label: str  # the step's node: its own name, or `NAME.escalated`
    escalates: bool  # a failure goes to the escalated attempt rather than ending the run


def agent_node(call: AgentCall) -> Callable[[Mapping[str, Any], RunnableConfig], Update]:
    def run(state: Mapping[str, Any], config: RunnableConfig) -> Update:
        view = view_of(state)
        request = call.input(view) if call.input is not None else default_request(call, view)
        extra: dict[str, Any] = {WORKFLOW_REMINDER: reminder(call, state)}
        if call.budget_usd is not None:
            key = step_key(thread_of(config), call.label)
            Budgets(store_of(config)).ensure_limit(key, usd=call.budget_usd)
            extra[STEP_BUDGET] = key
        message = HumanMessage(_text(request), id=_message_id(config))
        values = call.subgraph.invoke({"messages": [message]}, {"configurable": extra})
        crash_point("workflow.step_done")  # the agent answered; the step's update isn't written
        return step_outcome(call, values)

    return run


def step_outcome(call: AgentCall, values: Mapping[str, Any]) -> Update:
    """The workflow's update from the agent's final state."""
    calls: list[ModelCall] = []
    for made in values.get("calls", []):
        tagged = cast(ModelCall, {**made, "workflow_step": call.label})
        calls.append(tagged)
    update: Update = {
        "calls": calls,
        "routes": list(values.get("routes", [])),
        "verdicts": list(values.get("verdicts", [])),
    }
    status = values.get("status")
    if status == "done":
        answer = values.get("answer") or ""
        update["results"] = {call.step: _parsed(answer) if call.as_json else answer}
        update["plan"] = status_of(call.step, "done")
        update["failures"] = {call.label: ""}
        return update
    why = values.get("error") or f"the agent ended {status}"
    update["failures"] = {call.label: f"{status}: {why}"}
    if call.escalates:
        return update
    update["plan"] = status_of(call.step, "failed")
    update["status"] = status if status in HALTED else "failed"
    update["error"] = f"step {call.label}: {status}: {why}"
    return update


def default_request(call: AgentCall, view: Mapping[str, Any]) -> str:
    results = {k: v for k, v in view["results"].items()}
    parts = [f"Request: {view['request']}", f"Your step: {call.goal}"]
    if results:
        parts.append("Results of the steps before yours (JSON):")
        parts.append(json.dumps(results, default=str, ensure_ascii=False, indent=1))
    return "\n".join(parts)


def reminder(call: AgentCall, state: Mapping[str, Any]) -> dict[str, Any]:
    """What the agent's every model call is reminded of: the workflow's objective, its
    steps with their statuses (this one in progress), this step's goal."""
    plan = [
        {"step": s["step"], "status": "in_progress" if s["step"] == call.step else s["status"]}
        for s in state.get("plan", [])
    ]
    return {
        "workflow": call.workflow,
        "objective": state.get("objective", ""),
        "steps": plan,
        "current": call.step,
        "goal": call.goal,
    }


def function_node(
    name: str, fn: Callable[..., Any], side_effects: bool
) -> Callable[[Mapping[str, Any], RunnableConfig], Update]:
    """A deterministic step; with side effects, recorded so a replay returns its value."""

    def run(state: Mapping[str, Any], config: RunnableConfig) -> Update:
        view = view_of(state)
        try:
            value = _once(name, fn, view, state, config) if side_effects else fn(view)
        except GraphBubbleUp:  # an interrupt inside the function: LangGraph's to handle
            raise
        except Exception as error:  # noqa: BLE001 — the step failed: the workflow ends so
            return {
                "plan": status_of(name, "failed"),
                "status": "failed",
                "error": f"step {name}: {type(error).__name__}: {error}",
            }
        return {"results": {name: value}, "plan": status_of(name, "done")}

    return run


def _once(
    name: str,
    fn: Callable[..., Any],
    view: Mapping[str, Any],
    state: Mapping[str, Any],
    config: RunnableConfig,
) -> Any:
    from tierflow.tools.arguments import ToolContext

    thread = thread_of(config)
    loops = json.dumps(state.get("loops", {}), sort_keys=True)
    call_id = f"{name}:{loops}:{_request_id(state)}"
    key = idempotency_key(thread, 0, call_id)

    def call(attempt: Any) -> RecordedResult:
        context = ToolContext(thread, 0, call_id, key, attempt=attempt.attempt)
        return RecordedResult(True, json.dumps(fn(view, context), default=str))

    site = CallSite(thread=thread, step=0, call_id=call_id, tool=name)
    outcome = SideEffects(store_of(config)).once(key, site, call)
    assert outcome is not None
    return json.loads(outcome.content)


def _request_id(state: Mapping[str, Any]) -> str:
    messages = state.get("messages", [])
    index = last_request_index(messages)
    return "" if index is None else str(messages[index].id)


def approval_node(
    name: str, message: str | Callable[[Mapping[str, Any]], Any], *, audited: bool
) -> Callable[[Mapping[str, Any], RunnableConfig], Update]:
    """A human decides; in a governed workflow (`audited`) the decision is an audit row
    (kind `review`), written once however often the node runs again."""

    def run(state: Mapping[str, Any], config: RunnableConfig) -> Update:
        text = message if isinstance(message, str) else _text(message(view_of(state)))
        decision = interrupt({"kind": "approval", "step": name, "message": text})
        if not isinstance(decision, Mapping):
            decision = {"action": "reject", "reason": f"unreadable decision {decision!r}"}
        outcome = review_outcome(decision)
        if audited:
            _audit_approval(name, text, decision, state, config)
        if outcome == "approved":
            return {"plan": status_of(name, "done"), "results": {name: "approved"}}
        why = rejection_reason(decision)
        return {
            "plan": status_of(name, "failed"),
            "results": {name: f"rejected: {why}"},
            "status": "refused",
            "answer": f"Not approved at step {name!r}: {why}.",
        }

    return run


def _audit_approval(
    name: str,
    text: str,
    decision: Mapping[str, Any],
    state: Mapping[str, Any],
    config: RunnableConfig,
) -> None:
    thread = thread_of(config)
    principal = run_context().principal
    loops = json.dumps(state.get("loops", {}), sort_keys=True)
    why = decision.get("reason")
    said = f"{decision.get('action')}: {why}" if why else str(decision.get("action"))
    reviewer = decision.get("reviewer") or "reviewer"
    # Once per decision: a process that died after auditing one leaves the question open,
    # and the decision the resume carries out (another reviewer's, say) is its own row.
    decided = f"{review_outcome(decision)}:{reviewer}"
    AuditLog(store_of(config)).write(
        AuditRecord(
            event=f"approval:{thread}:{_request_id(state)}:{name}:{loops}:{decided}",
            thread=thread,
            step=0,
            kind="review",
            name=name,
            decision=review_outcome(decision),
            outcome="ok",
            principal=None if principal is None else principal.id,
            reason=f"{text} — {reviewer}: {said}",
        )
    )


def guard_node(guardrail: Guardrail, answer_step: str) -> Callable[[Mapping[str, Any]], Update]:
    """Checks the workflow's answer; a failure ends it refused, with the guard's refusal."""

    def run(state: Mapping[str, Any]) -> Update:
        candidate = _text(state.get("results", {}).get(answer_step, ""))
        verdict = guardrail.check(candidate, view_of(state))
        record = {
            "guard": guardrail.name,
            "ok": verdict.ok,
            "reason": verdict.reason,
            "step": 0,
            "policy": "pass" if verdict.ok else "refuse",
        }
        if verdict.ok:
            return {"verdicts": [record]}
        return {
            "verdicts": [record],
            "status": "refused",
            "answer": guardrail.refusal,
            "error": f"guard {guardrail.name}: {verdict.reason}",
        }

    return run


def finish_node(answer_step: str) -> Callable[[Mapping[str, Any]], Update]:
    def run(state: Mapping[str, Any]) -> Update:
        answer = _text(state.get("results", {}).get(answer_step, ""))
        skipped = [s["step"] for s in state.get("plan", []) if s["status"] == "pending"]
        return {
            "status": "done",
            "answer": answer,
            "messages": [AIMessage(answer)],
            "plan": [item for name in skipped for item in status_of(name, "skipped")],
        }

    return run


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _parsed(answer: str) -> Any:
    try:
        return json.loads(answer)
    except json.JSONDecodeError:
        return answer


def _message_id(config: RunnableConfig) -> str:
    """The same on every run of one task of this node (a resume), another for the next."""
    namespace = str(get_config().get("configurable", {}).get("checkpoint_ns", ""))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tierflow-step:{thread_of(config)}:{namespace}"))


# What a nested workflow is given of its parent's state, and what of its own it returns.
NESTED_INPUT = ("messages", "request", "objective", "results", "plan", "loops", "failures")
NESTED_OUTPUT = ("results", "plan", "loops", "failures", "calls", "routes", "verdicts")


def nested_node(
    name: str, subgraph: Any, steps: frozenset[str]
) -> Callable[[Mapping[str, Any]], Update]:
    """A nested workflow as one step: its own steps run inside, as a subgraph. It
    returns only what is about its own `steps` (their results, statuses, loop counts,
    failures): what it was given of the others is stale once a parallel sibling or a
    loop's next iteration has written newer values."""

    def own(key: str) -> bool:
        return key.split(".", 1)[0] in steps  # `NAME.escalated` is NAME's

    def run(state: Mapping[str, Any]) -> Update:
        given = {key: state[key] for key in NESTED_INPUT if key in state}
        values = subgraph.invoke(given)
        update: Update = {key: values[key] for key in NESTED_OUTPUT if key in values}
        for key in ("results", "loops", "failures"):
            if key in update:
                update[key] = {k: v for k, v in update[key].items() if own(k)}
        mine = [item for item in update.get("plan", []) if own(item["step"])]
        update["plan"] = [*mine, *status_of(name, "done")]
        if values.get("status") in HALTED:
            update["plan"] = [*update["plan"], *status_of(name, "failed")]
            for key in ("status", "answer", "error"):
                update[key] = values.get(key)
        return update

    return run
