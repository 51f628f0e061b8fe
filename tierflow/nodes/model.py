"""The `model:<tier>` node: one model turn on one tier, with its usage and cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.config import get_stream_writer

from tierflow.governance.budget import Reservation, Spend
from tierflow.governance.errors import BudgetExceeded
from tierflow.governance.gate import WaitEvent
from tierflow.governance.governor import Governor
from tierflow.models.price import Price, service_tier_of, usage_from_metadata
from tierflow.models.resolve import (
    ModelReference,
    model_label,
    openai_model,
    resolve_model,
    retry_policy,
)
from tierflow.models.retry import RetryNotice, RetryPolicy, acall_with_retries, call_with_retries
from tierflow.nodes.dual import dual_node
from tierflow.nodes.governed import (
    Governance,
    estimate_spend,
    output_bound,
    prompt_bytes,
    provider_of,
)
from tierflow.nodes.state import AgentState, ModelCall
from tierflow.nodes.tools import Tool


@dataclass(frozen=True)
class Held:
    """A governed model call's reservation, and what settling it needs."""

    governor: Governor
    reservation: Reservation
    step: int
    on_wait: Callable[[WaitEvent], None] | None
    started: float


@dataclass
class TierModel:
    """A tier's model, resolved on first use so that drawing or linting an agent never
    needs an API key. Resolution is deterministic; the cache only saves the work."""

    tier: str
    reference: ModelReference
    tools: Sequence[Tool]
    _bound: Runnable[LanguageModelInput, BaseMessage] | None = field(default=None, repr=False)

    def bound(self) -> Runnable[LanguageModelInput, BaseMessage]:
        if self._bound is None:
            chat = resolve_model(self.reference)
            schemas = [t.openai_schema() for t in self.tools]
            self._bound = chat.bind_tools(schemas) if schemas else chat
        return self._bound

    @property
    def label(self) -> str:
        return model_label(self.reference)

    @property
    def retry(self) -> RetryPolicy:
        return retry_policy(self.reference)

    def where(self) -> str:
        """`tier 'fast' (gpt-4.1 at …)`: who failed, in an error message."""
        config = openai_model(self.reference)
        return f"tier {self.tier!r} ({config.label if config else self.label})"

    def auth_hint(self) -> str:
        config = openai_model(self.reference)
        return f"the key is read from ${config.api_key_env}" if config else ""


def reserve_call(
    governance: Governance | None,
    model: TierModel,
    price: Price,
    *,
    state: AgentState,
    config: RunnableConfig,
    messages: list[BaseMessage],
) -> Held | dict[str, Any] | None:
    """The call's reservation (None when ungoverned), or the update that ends the
    run because no budget is left."""
    if governance is None:
        return None
    thread_id = str(config.get("configurable", {}).get("thread_id", ""))
    governor = governance.governor(thread_id)
    schemas = [t.openai_schema() for t in model.tools]
    tokens_in = prompt_bytes(messages, schemas)
    tokens_out = output_bound(model.reference, governance.policy)
    estimate = estimate_spend(tokens_in, tokens_out, price)
    step = state.get("steps", 0) + 1
    held = governor.reserve_model(estimate=estimate, step=step, model=model.label)
    if isinstance(held, BudgetExceeded):
        return {"status": "budget_exceeded", "error": held.reason}
    return Held(governor, held, step, governance.wait_reporter(thread_id), time.monotonic())


def settle_call(
    held: Held, model: TierModel, response: BaseMessage | None, update: dict[str, Any]
) -> None:
    """Settle the reservation with the reported usage (at zero for a failed call)."""
    calls: list[ModelCall] = update.get("calls", [])
    latency = time.monotonic() - held.started
    if response is None or not calls:
        held.governor.settle_model(
            held.reservation,
            actual=Spend(),
            step=held.step,
            outcome="error",
            latency_s=latency,
            reason="the model call failed",
        )
        return
    usage = calls[0]["usage"]
    tokens = usage["input_tokens"] + usage["output_tokens"]
    held.governor.settle_model(
        held.reservation,
        actual=Spend(usd=calls[0]["cost_usd"], tokens=tokens),
        step=held.step,
        latency_s=latency,
    )
    held.governor.capacity.settle_tokens(
        provider_of(model.label), estimated=held.reservation.estimate.tokens, actual=tokens
    )


def model_slot(held: Held | None, model: TierModel) -> AbstractContextManager[None]:
    """The model call's concurrency slots and rate limit (nothing when ungoverned)."""
    if held is None:
        return nullcontext()
    return held.governor.capacity.model_call(
        provider_of(model.label), tokens=held.reservation.estimate.tokens, on_wait=held.on_wait
    )


def model_slot_async(held: Held | None, model: TierModel) -> AbstractAsyncContextManager[None]:
    if held is None:
        return nullcontext()
    return held.governor.capacity.model_call_async(
        provider_of(model.label), tokens=held.reservation.estimate.tokens, on_wait=held.on_wait
    )


def model_input(instructions: str, state: AgentState) -> list[BaseMessage]:
    """Instructions, the stored history, then the reminder — the last thing read."""
    return [
        SystemMessage(instructions),
        *state.get("messages", []),
        SystemMessage(state.get("reminder", "")),
    ]


def limit_reached(state: AgentState, max_steps: int) -> dict[str, Any] | None:
    if state.get("steps", 0) < max_steps:
        return None
    return {
        "status": "failed",
        "error": f"step limit reached: {max_steps} model steps without a final answer",
    }


def make_model_node(
    tier: str,
    *,
    model: TierModel,
    price: Price,
    instructions: str,
    max_steps: int,
    answer_is_final: bool,
    governance: Governance | None = None,
) -> RunnableLambda[Any, Any]:
    """`answer_is_final`: no guardrails stand between this node and END, so an answer
    without tool calls finishes the run here. `governance`: the call's estimated
    maximum cost is reserved on the run's budgets first (none left: the run ends
    `budget_exceeded`), it waits for its model slots and rate, and its reported usage
    settles the reservation afterwards."""

    def record(state: AgentState, response: BaseMessage) -> dict[str, Any]:
        if not isinstance(response, AIMessage):
            raise TypeError(f"tier {tier!r}: model returned {type(response).__name__}")
        usage = usage_from_metadata(response.usage_metadata)
        service_tier = service_tier_of(response.usage_metadata)
        step = state.get("steps", 0) + 1
        call = ModelCall(
            step=step,
            tier=tier,
            model=model.label,
            usage=usage,
            usage_source=str(response.response_metadata.get("usage_source", "provider")),
            cost_usd=price.for_service_tier(service_tier).cost(usage),
            tool_calls=[c["name"] for c in response.tool_calls],
        )
        if service_tier is not None:
            call["service_tier"] = service_tier
        update: dict[str, Any] = {"messages": [response], "steps": step, "calls": [call]}
        has_calls = bool(response.tool_calls or response.invalid_tool_calls)
        if not has_calls:
            update["candidate"] = str(response.text)
            if answer_is_final:
                update |= {"status": "done", "answer": str(response.text)}
        return update

    def report_retry(notice: RetryNotice) -> None:
        # Seen by `stream_mode="custom"` (and `tierflow run --stream`); a no-op otherwise.
        get_stream_writer()({"event": "retry", "node": f"model.{tier}", **notice})

    def run(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        stop = limit_reached(state, max_steps)
        if stop is not None:
            return stop
        messages = model_input(instructions, state)
        held = reserve_call(governance, model, price, state=state, config=config, messages=messages)
        if isinstance(held, dict):
            return held
        response: BaseMessage | None = None
        update: dict[str, Any] = {}
        try:
            with model_slot(held, model):
                response = call_with_retries(
                    lambda: model.bound().invoke(messages, config),
                    model.retry,
                    label=model.where(),
                    auth_hint=model.auth_hint(),
                    on_retry=report_retry,
                )
            update = record(state, response)
        finally:
            if held is not None:
                settle_call(held, model, response, update)
        return update

    async def run_async(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        stop = limit_reached(state, max_steps)
        if stop is not None:
            return stop
        messages = model_input(instructions, state)
        held = reserve_call(governance, model, price, state=state, config=config, messages=messages)
        if isinstance(held, dict):
            return held
        response: BaseMessage | None = None
        update: dict[str, Any] = {}
        try:
            async with model_slot_async(held, model):
                response = await acall_with_retries(
                    lambda: model.bound().ainvoke(messages, config),
                    model.retry,
                    label=model.where(),
                    auth_hint=model.auth_hint(),
                    on_retry=report_retry,
                )
            update = record(state, response)
        finally:
            if held is not None:
                settle_call(held, model, response, update)
        return update

    return dual_node(f"model.{tier}", run, run_async)
