"""The LLM router: a (fast) chat model reads the request and picks the tier.

It asks for structured output (`with_structured_output`), so any LangChain chat model
that supports it works — including the offline `ScriptedChatModel`, whose turn calls
the `RouteChoice` tool with the choice as arguments. A reply that is not a valid choice
(unparseable, or a tier the router does not offer) becomes a decision for `fallback`
with confidence 0, so a composition moves on to its next strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field, PrivateAttr, computed_field, model_validator

from tierflow.errors import ModelError, SpecError
from tierflow.foundation.spec import SpecModel
from tierflow.models.price import Price, usage_from_metadata
from tierflow.models.resolve import resolve_model
from tierflow.routing.decision import Effort, TierCost, complete
from tierflow.routing.router import RouteDecision, RouterCall, record_router_call


class RouteChoice(BaseModel):
    """The tier that should answer the request, how sure you are, and why."""

    tier: str = Field(description="One of the tier names offered.")
    confidence: float = Field(ge=0.0, le=1.0, description="0 = a guess, 1 = certain.")
    reason: str = Field(description="One short sentence.")
    effort: Effort | None = Field(
        default=None, description="Reasoning effort, only for a tier that reasons."
    )


INSTRUCTIONS = """You route requests to the model tier that should answer them.
Pick the cheapest tier that will answer this request correctly.

Tiers:
{tiers}

Reply with the tier's name, your confidence between 0 and 1, one short reason{effort}."""


class LLMRouter(SpecModel):
    """Asks `model` which of `choices` (tier → when to use it, weakest first) fits the
    request.

    `model` is a LangChain chat model or a `provider:model` reference — usually the
    fast tier's model. `effort_tiers` may also be given a reasoning effort.

    The classification is a model call of the run's (`tier="router"`), priced at
    `price`: declared, or for a reference the maintained table's (a reference the table
    doesn't price must declare one). A chat model object without a price is recorded
    at cost 0, `price_source="unpriced"` — its tokens still count.
    """

    model: str | BaseChatModel = Field(exclude=True, repr=False)
    choices: Mapping[str, str]
    fallback: str
    name: str = "llm"
    effort_tiers: tuple[str, ...] = ()
    costs: Mapping[str, TierCost] = Field(default_factory=dict)
    price: Price | None = None
    _chat: BaseChatModel | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _table_price(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("price") is not None:
            return data
        reference = data.get("model")
        if not isinstance(reference, str):
            return data
        try:
            return {**data, "price": Price.of(reference)}
        except (ModelError, ValueError) as error:
            raise SpecError(
                "router.price", f"declare it: the classifier {reference!r} is unpriced ({error})"
            ) from None

    @model_validator(mode="after")
    def _known_tiers(self) -> LLMRouter:
        if not self.choices:
            raise ValueError("offer at least one tier in choices")
        unknown = set(self.effort_tiers) - set(self.choices)
        if unknown:
            raise ValueError(f"effort_tiers {sorted(unknown)} are not among the choices")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def model_name(self) -> str:
        """The classifying model, for `agent.to_json()`."""
        if isinstance(self.model, str):
            return self.model
        return str(getattr(self.model, "model_name", None) or type(self.model).__name__)

    def tiers(self) -> set[str]:
        return {*self.choices, self.fallback}

    def prompt(self) -> str:
        tiers = "\n".join(f"- {tier}: {when}" for tier, when in self.choices.items())
        effort = (
            f", and for {', '.join(self.effort_tiers)} a reasoning effort"
            if self.effort_tiers
            else ""
        )
        return INSTRUCTIONS.format(tiers=tiers, effort=effort)

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        classifier = self._chat_model().with_structured_output(RouteChoice, include_raw=True)
        reply = classifier.invoke([SystemMessage(self.prompt()), HumanMessage(request)])
        self._record(reply)
        choice = reply.get("parsed") if isinstance(reply, dict) else None
        if not isinstance(choice, RouteChoice):
            problem = reply.get("parsing_error") if isinstance(reply, dict) else reply
            return self._unsure(f"no valid choice from the model ({problem})", request, state)
        if choice.tier not in self.choices:
            return self._unsure(f"the model chose unknown tier {choice.tier!r}", request, state)
        decision = RouteDecision(
            tier=choice.tier,
            router=self.name,
            reason=choice.reason.strip() or "no reason given",
            confidence=choice.confidence,
        )
        effort = choice.effort if choice.tier in self.effort_tiers else None
        return complete(decision, request, state, self.costs, effort)

    def _unsure(self, why: str, request: str, state: Mapping[str, Any]) -> RouteDecision:
        decision = RouteDecision(
            tier=self.fallback, router=self.name, reason=f"{why}: fallback", confidence=0.0
        )
        return complete(decision, request, state, self.costs)

    def _record(self, reply: object) -> None:
        """Report the classification call's usage and cost (`router_calls`)."""
        raw = reply.get("raw") if isinstance(reply, dict) else None
        metadata = getattr(raw, "usage_metadata", None)
        response = getattr(raw, "response_metadata", None) or {}
        usage = usage_from_metadata(metadata)
        record_router_call(
            RouterCall(
                router=self.name,
                model=self.model_name,
                usage=usage,
                usage_source=str(response.get("usage_source", "provider")),
                cost_usd=self.price.cost(usage) if self.price is not None else 0.0,
                price_source=self.price.origin if self.price is not None else "unpriced",
            )
        )

    def _chat_model(self) -> BaseChatModel:
        if self._chat is None:
            self._chat = resolve_model(self.model)
        return self._chat
