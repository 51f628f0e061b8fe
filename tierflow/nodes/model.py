"""The `model:<tier>` node: one model turn on one tier, with its usage and cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer

from tierflow.errors import BudgetExceeded
from tierflow.foundation.retry import RetryEvent, RetryPolicy
from tierflow.governance.budget import Reservation, Spend
from tierflow.governance.gate import WaitEvent
from tierflow.governance.governor import Governor
from tierflow.governance.policy import Policy
from tierflow.models.price import Price, service_tier_of, usage_from_metadata
from tierflow.models.resolve import (
    ModelReference,
    model_label,
    openai_model,
    resolve_model,
    retry_policy,
)
from tierflow.models.retry import acall_model_with_retries, call_model_with_retries
from tierflow.nodes.context import Governing
from tierflow.nodes.dual import dual_node
from tierflow.nodes.governed import (
    CallOptions,
    OutputCap,
    cap_violation,
    estimate_spend,
    output_cap,
    prompt_bytes,
    provider_of,
)
from tierflow.nodes.remind import reminder_of
from tierflow.nodes.state import AgentState, ModelCall, ModelUpdate
from tierflow.routing.router import RouteDecision
from tierflow.tools.declare import Tool


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
    # The tier's declared output cap (`Tier.max_output_tokens`).
    max_output_tokens: OutputCap = None
    # Sent as OpenAI's `prompt_cache_key` (`agent/tier`): one agent's tier shares a
    # prompt prefix across runs, so its requests should land on the same cache.
    cache_key: str | None = None
    _chat: BaseChatModel | None = field(default=None, repr=False)
    _bound: Runnable[LanguageModelInput, BaseMessage] | None = field(default=None, repr=False)

    def chat(self) -> BaseChatModel:
        if self._chat is None:
            self._chat = resolve_model(self.reference, cache_key=self.cache_key)
        return self._chat

    def bound(self) -> Runnable[LanguageModelInput, BaseMessage]:
        if self._bound is None:
            chat = self.chat()
            schemas = [t.openai_schema() for t in self.tools]
            self._bound = chat.bind_tools(schemas) if schemas else chat
        return self._bound

    def sending(self, options: CallOptions) -> Runnable[LanguageModelInput, BaseMessage]:
        """The tier's model, with the call's effort and output cap bound as it takes them."""
        sent = options.kwargs(self.chat(), self.takes_effort())
        return self.bound().bind(**sent) if sent else self.bound()

    def options(self, route: RouteDecision | None, policy: Policy | None) -> CallOptions:
        """What a call of this tier sends: the effort of the run's route decision when
        it chose this tier, and the output cap (the bound a governed call reserves at)."""
        effort = route.get("effort") if route is not None and route["tier"] == self.tier else None
        cap = output_cap(self.reference, self.max_output_tokens, effort, policy)
        return CallOptions(effort=effort, cap=cap)

    def takes_effort(self) -> bool:
        """Whether the model takes a `reasoning_effort` (an OpenAI model may not)."""
        config = openai_model(self.reference)
        return config.accepts_effort() if config is not None else True

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
    governing: Governing,
    model: TierModel,
    price: Price,
    *,
    state: AgentState,
    config: RunnableConfig,
    messages: list[BaseMessage],
    options: CallOptions,
) -> Held | ModelUpdate | None:
    """The call's reservation (None when ungoverned) at the output cap the call is
    sent, or the update that ends the run because no budget is left. Blocking (the run
    store): the async node runs it in a worker thread."""
    governor = governing.governor(config, state.get("principal"))
    if governor is None:
        return None
    # Governed, a call always has a cap: the policy's at least.
    cap = governor.policy.max_output_tokens if options.cap is None else options.cap
    schemas = [t.openai_schema() for t in model.tools]
    estimate = estimate_spend(prompt_bytes(messages, schemas), cap, price)
    step = state.get("steps", 0) + 1
    held = governor.reserve_model(estimate=estimate, step=step, model=model.label)
    if isinstance(held, BudgetExceeded):
        return ModelUpdate(status="budget_exceeded", error=held.reason)
    return Held(governor, held, step, governing.wait_reporter(config), time.monotonic())


def settle_call(
    held: Held, model: TierModel, response: BaseMessage | None, update: ModelUpdate
) -> ModelUpdate:
    """Settle the reservation with the reported usage (at zero for a failed call). A
    call that cost more than its reservation — a provider that reported more output
    than its cap — is settled in full and audited as the provider's overspend; if that
    took a budget past its limit, the update ending the run `budget_exceeded`."""
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
        return ModelUpdate()
    usage = calls[0]["usage"]
    tokens = usage["input_tokens"] + usage["output_tokens"]
    actual = Spend(usd=calls[0]["cost_usd"], tokens=tokens)
    held.governor.settle_model(
        held.reservation,
        actual=actual,
        step=held.step,
        latency_s=latency,
        reason=calls[0].get("provider_violation", ""),
    )
    held.governor.capacity.settle_tokens(
        provider_of(model.label), estimated=held.reservation.estimate.tokens, actual=tokens
    )
    estimate = held.reservation.estimate
    if actual.usd <= estimate.usd and actual.tokens <= estimate.tokens:
        return ModelUpdate()
    over = held.governor.budgets.over_limit(held.governor.budget_keys())
    return ModelUpdate() if over is None else overspent(update, over)


def overspent(update: ModelUpdate, over: BudgetExceeded) -> ModelUpdate:
    """The update that ends a run whose last call took a budget past its limit. The
    call is recorded (its cost, its violation); its answer is not acted on: the run
    stops before any tool runs, and a resumed run (budget raised) makes the call again."""
    violation = next(
        (c["provider_violation"] for c in update.get("calls", []) if "provider_violation" in c),
        None,
    )
    reason = over.reason if violation is None else f"{over.reason} ({violation})"
    return ModelUpdate(
        messages=[],
        candidate=None,
        answer=None,
        status="budget_exceeded",
        error=reason,
    )


def model_slot(held: Held | None, model: TierModel) -> AbstractContextManager[None]:
    """The model call's concurrency slots and rate limit (nothing when ungoverned)."""
    if held is None:
        return nullcontext()
    return held.governor.capacity.model_call(
        provider_of(model.label), tokens=held.reservation.estimate.tokens, on_wait=held.on_wait
    )


def amodel_slot(held: Held | None, model: TierModel) -> AbstractAsyncContextManager[None]:
    if held is None:
        return nullcontext()
    return held.governor.capacity.amodel_call(
        provider_of(model.label), tokens=held.reservation.estimate.tokens, on_wait=held.on_wait
    )


def model_input(instructions: str, state: AgentState, max_steps: int) -> list[BaseMessage]:
    """Instructions, the stored history, then the reminder — the last thing read, built
    here from state at every call (never stored)."""
    return [
        SystemMessage(instructions),
        *state.get("messages", []),
        SystemMessage(reminder_of(state, max_steps)),
    ]


def limit_reached(state: AgentState, max_steps: int) -> ModelUpdate | None:
    if state.get("steps", 0) < max_steps:
        return None
    return ModelUpdate(
        status="failed",
        error=f"step limit reached: {max_steps} model steps without a final answer",
    )


@dataclass(frozen=True)
class ModelNode:
    """The `model:TIER` node. `answer_is_final`: no guardrails stand between this node
    and END, so an answer without tool calls finishes the run here. A governed run
    (`governing`, from the run context): the call's estimated maximum cost is reserved
    on the run's budgets first (none left: the run ends `budget_exceeded`), it waits for
    its model slots and rate, and its reported usage settles the reservation after."""

    tier: str
    model: TierModel
    price: Price
    instructions: str
    max_steps: int
    answer_is_final: bool
    governing: Governing

    def record(self, state: AgentState, response: BaseMessage, options: CallOptions) -> ModelUpdate:
        if not isinstance(response, AIMessage):
            raise TypeError(f"tier {self.tier!r}: model returned {type(response).__name__}")
        usage = usage_from_metadata(response.usage_metadata)
        service_tier = service_tier_of(response.usage_metadata)
        step = state.get("steps", 0) + 1
        call = ModelCall(
            step=step,
            tier=self.tier,
            model=self.model.label,
            usage=usage,
            usage_source=str(response.response_metadata.get("usage_source", "provider")),
            cost_usd=self.price.for_service_tier(service_tier).cost(usage),
            tool_calls=[c["name"] for c in response.tool_calls],
        )
        if service_tier is not None:
            call["service_tier"] = service_tier
        cache_source = response.response_metadata.get("cache_source")
        if cache_source is not None:
            call["cache_source"] = str(cache_source)
        call["price_source"] = self.price.origin
        if options.effort is not None and options.sends_effort(
            self.model.chat(), self.model.takes_effort()
        ):
            call["effort"] = options.effort
        if options.cap is not None:
            call["output_cap"] = options.cap
        violation = cap_violation(usage, options.cap)
        if violation is not None:
            call["provider_violation"] = violation
        update = ModelUpdate(messages=[response], steps=step, calls=[call])
        if not (response.tool_calls or response.invalid_tool_calls):
            update["candidate"] = str(response.text)
            if self.answer_is_final:
                update |= ModelUpdate(status="done", answer=str(response.text))
        return update

    def report_retry(self, event: RetryEvent) -> None:
        # Seen by `stream_mode="custom"` (and `tierflow run --stream`); a no-op otherwise.
        get_stream_writer()({"event": "retry", "node": f"model.{self.tier}", **event})

    def options(self, state: AgentState) -> CallOptions:
        return self.model.options(state.get("route"), self.governing.policy)

    def reserve(
        self,
        state: AgentState,
        config: RunnableConfig,
        messages: list[BaseMessage],
        options: CallOptions,
    ) -> Held | ModelUpdate | None:
        return reserve_call(
            self.governing,
            self.model,
            self.price,
            state=state,
            config=config,
            messages=messages,
            options=options,
        )

    def run(self, state: AgentState, config: RunnableConfig) -> ModelUpdate:
        stop = limit_reached(state, self.max_steps)
        if stop is not None:
            return stop
        messages = model_input(self.instructions, state, self.max_steps)
        options = self.options(state)
        held = self.reserve(state, config, messages, options)
        if isinstance(held, dict):
            return held
        response: BaseMessage | None = None
        update = ModelUpdate()
        try:
            with model_slot(held, self.model):
                response = call_model_with_retries(
                    lambda: self.model.sending(options).invoke(messages, config),
                    self.model.retry,
                    label=self.model.where(),
                    auth_hint=self.model.auth_hint(),
                    on_retry=self.report_retry,
                )
            update = self.record(state, response, options)
        finally:
            if held is not None:
                update |= settle_call(held, self.model, response, update)
        return update

    async def arun(self, state: AgentState, config: RunnableConfig) -> ModelUpdate:
        stop = limit_reached(state, self.max_steps)
        if stop is not None:
            return stop
        messages = model_input(self.instructions, state, self.max_steps)
        options = self.options(state)
        held: Held | ModelUpdate | None = None
        if self.governing.governed:  # the run store blocks: off the event loop
            held = await asyncio.to_thread(self.reserve, state, config, messages, options)
        if isinstance(held, dict):
            return held
        response: BaseMessage | None = None
        update = ModelUpdate()
        try:
            async with amodel_slot(held, self.model):
                response = await acall_model_with_retries(
                    lambda: self.model.sending(options).ainvoke(messages, config),
                    self.model.retry,
                    label=self.model.where(),
                    auth_hint=self.model.auth_hint(),
                    on_retry=self.report_retry,
                )
            update = self.record(state, response, options)
        finally:
            if held is not None:
                update |= await asyncio.to_thread(settle_call, held, self.model, response, update)
        return update

    def node(self) -> Runnable[Any, Any]:
        return dual_node(f"model.{self.tier}", self.run, self.arun)
