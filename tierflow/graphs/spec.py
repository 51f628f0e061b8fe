"""The declarative agent: data that validates on construction and serialises to JSON."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.language_models import BaseChatModel
from pydantic import (
    BaseModel,
    Field,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from tierflow.errors import ModelError, SpecError
from tierflow.foundation.spec import SpecModel
from tierflow.governance.policy import Policy
from tierflow.guardrails.base import Guardrail
from tierflow.models.openai import OpenAIModel, ReasoningEffort
from tierflow.models.price import Price
from tierflow.models.resolve import ModelReference, parse_reference
from tierflow.nodes.plan_tool import UPDATE_PLAN
from tierflow.routing.router import Router
from tierflow.routing.rules import RulesRouter
from tierflow.tools.declare import Tool

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _filled_before() -> Price:
    raise AssertionError("Tier._table_price fills in a missing price before validation")


class Tier(SpecModel):
    """A model tier: a name, a model (a `provider:model` reference, an `OpenAIModel`,
    or a LangChain chat model), a price.

    Without a price, a known model (`openai:gpt-4.1`, or an `OpenAIModel` on OpenAI's
    own endpoint) is priced from genai-prices' bundled table (`Price.of`), and the
    price records it (`price.source`); a declared price wins."""

    name: str
    model: str | OpenAIModel | BaseChatModel
    price: Price = Field(default_factory=_filled_before)
    # Caps each call's output (reasoning included): one cap, or one per reasoning effort
    # of the route decision (an effort not named falls back to the model's own cap, then
    # the policy's). Sent to the provider; a governed call's reservation is sized at it.
    max_output_tokens: PositiveInt | dict[ReasoningEffort, PositiveInt] | None = None

    @model_validator(mode="before")
    @classmethod
    def _table_price(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("price") is not None:
            return data
        reference = _table_reference(data.get("model"))
        if reference == "":  # not a reference at all: the `model` field says so
            return data
        if reference is None:
            raise SpecError(
                "tier.price",
                "declare it: only 'provider:model' references and OpenAI's own endpoint "
                "are priced from the table",
            )
        try:
            return {**data, "price": Price.of(reference)}
        except ModelError as error:
            raise SpecError("tier.price", str(error)) from None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"{name!r} must be lower-case letters, digits and _")
        return name

    @field_validator("model")
    @classmethod
    def _reference(cls, model: ModelReference) -> ModelReference:
        if isinstance(model, str):
            parse_reference(model)
        return model

    def spec(self) -> dict[str, Any]:
        model: str | dict[str, Any]
        if isinstance(self.model, str):
            model = self.model
        elif isinstance(self.model, OpenAIModel):
            model = {"openai": self.model.model_dump(mode="json")}
        else:
            model = {
                "class": type(self.model).__name__,
                "model_name": getattr(self.model, "model_name", None),
            }
        price = self.price.model_dump(exclude_none=True)
        spec: dict[str, Any] = {"name": self.name, "model": model, "price": price}
        if self.max_output_tokens is not None:  # left out unset: fingerprints stay
            spec["max_output_tokens"] = self.max_output_tokens
        return spec


class Limits(SpecModel):
    """Budgets of one request: model steps, and tool calls per model turn."""

    max_steps: int = Field(default=20, gt=0)
    max_tool_calls_per_turn: int = Field(default=8, gt=0)


class Agent(SpecModel):
    """A declared agent. `compile()` turns it into a LangGraph graph."""

    spec_prefix: ClassVar[str | None] = ""

    name: str
    instructions: str
    tiers: tuple[Tier, ...]
    router: Any = None
    tools: tuple[Tool, ...] = ()
    guardrails: tuple[Any, ...] = ()
    limits: Limits = Field(default_factory=Limits)
    plan_tool: bool = True
    # Governance (docs/governance.md): grants, approval rules, budgets, caps, redaction.
    # None: the tools and models run ungoverned.
    policy: Policy | None = None
    # Run resources (docs/tools.md): name → a factory called once per run (the `Runner`
    # closes what has a `close()` when the run ends). Tools ask for one with
    # `Annotated[T, Needs(name)]`; a resume builds them again from these factories.
    resources: dict[str, Callable[[], Any]] = Field(default_factory=dict)
    # (id of the agent it was built for, the compiled graph): see `compiled_cache`.
    _compiled: tuple[int, Any] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Agent:
        if not self.name.strip():
            raise SpecError("name", "must not be empty")
        if len(self.tiers) < 2:
            raise SpecError("tiers", f"declare at least two tiers (got {len(self.tiers)})")
        _no_duplicates("tiers", [t.name for t in self.tiers])
        if self.router is None:
            object.__setattr__(self, "router", RulesRouter(default=self.tiers[0].name))
        if not isinstance(self.router, Router):
            raise SpecError("router", "must have name, tiers() and route(request, state)")
        unknown = self.router.tiers() - {t.name for t in self.tiers}
        if unknown:
            raise SpecError(
                "router",
                f"routes to unknown tier(s) {sorted(unknown)}; declared: "
                f"{[t.name for t in self.tiers]}",
            )
        tool_names = [t.name for t in self.tools]
        _no_duplicates("tools", tool_names)
        if self.plan_tool and UPDATE_PLAN in tool_names:
            raise SpecError(f"tools.{UPDATE_PLAN}", "is built in; pick another name")
        for index, guardrail in enumerate(self.guardrails):
            if not isinstance(guardrail, Guardrail):
                raise SpecError(
                    f"guardrails.{index}",
                    "must have name, on_fail, max_reasks, refusal, check(candidate, context) "
                    "and spec()",
                )
        _no_duplicates("guardrails", [g.name for g in self.guardrails])
        for declared in self.tools:
            for parameter, resource in declared.needs.items():
                if resource not in self.resources:
                    raise SpecError(
                        f"tools.{declared.name}.{parameter}",
                        f"needs the run resource {resource!r}, which the agent doesn't "
                        f"declare (resources: {sorted(self.resources)})",
                    )
        untrusted = self.policy.untrusted_tools if self.policy else frozenset()
        if untrusted - set(tool_names):  # a typo would silently declare nothing untrusted
            raise SpecError(
                "policy.untrusted_tools",
                f"{sorted(untrusted - set(tool_names))} are not tools of this agent: {tool_names}",
            )
        return self

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def to_json(self) -> str:
        """The whole declaration as stable, sorted JSON — diff two versions of an agent."""
        router = self.router
        router_spec = (
            router.model_dump(mode="json")
            if isinstance(router, BaseModel)
            else {"name": router.name, "class": type(router).__name__}
        )
        document = {
            "name": self.name,
            "instructions": self.instructions,
            "tiers": [t.spec() for t in self.tiers],
            "router": router_spec,
            "tools": [t.spec() for t in self.tools],
            "guardrails": [g.spec() for g in self.guardrails],
            "limits": self.limits.model_dump(),
            "plan_tool": self.plan_tool,
            "policy": None if self.policy is None else policy_spec(self.policy),
            # only when declared, so the fingerprint of other agents is unchanged
            **({"resources": sorted(self.resources)} if self.resources else {}),
        }
        return json.dumps(document, indent=2, sort_keys=True)

    def with_models(self, **models: ModelReference) -> Agent:
        """The same agent with other models on the named tiers (prices unchanged)."""
        unknown = set(models) - {t.name for t in self.tiers}
        if unknown:
            raise SpecError("tiers", f"with_models: unknown tier(s) {sorted(unknown)}")
        tiers = tuple(
            Tier(
                name=t.name,
                model=models.get(t.name, t.model),
                price=t.price,
                max_output_tokens=t.max_output_tokens,
            )
            for t in self.tiers
        )
        return self.model_copy(update={"tiers": tiers})

    def all_tools(self) -> tuple[Tool, ...]:
        """The declared tools plus the built-in `update_plan` when enabled."""
        from tierflow.nodes.plan_tool import update_plan_tool

        return (*self.tools, update_plan_tool()) if self.plan_tool else self.tools

    def compile(
        self, checkpointer: BaseCheckpointSaver[Any] | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """A plain LangGraph compiled graph of this agent, on `checkpointer` — any
        LangGraph saver, or none. Compiled once per agent per process (later calls copy
        it). Run-specific things — who the run acts for, where a governed run keeps its
        tables — go in the run's context: `graph.invoke(input, config,
        context=RunContext(principal=..., governance=...))`. A governed agent without
        `governance` in its context keeps its tables in the run store it checkpoints
        to when that is tierflow's, else in the process's memory."""
        from tierflow.graphs.compile import compile_agent

        return compile_agent(self, checkpointer)

    def compiled_cache(
        self, graph: CompiledStateGraph[Any, Any, Any, Any] | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any] | None:
        """This agent's compiled graph, if built (with `graph`: remember it). Keyed by
        the object, so a copy (`with_models`) compiles its own."""
        if graph is not None:
            self._compiled = (id(self), graph)
        if self._compiled is not None and self._compiled[0] == id(self):
            cached: CompiledStateGraph[Any, Any, Any, Any] = self._compiled[1]
            return cached
        return None


def _table_reference(model: Any) -> str | None:
    """The `provider:model` the price table knows `model` by, if any ("" for a string
    that isn't a reference)."""
    if isinstance(model, str):
        try:
            parse_reference(model)
        except ValueError:
            return ""
        return model
    if isinstance(model, OpenAIModel) and model.base_url is None:
        return f"openai:{model.model}"
    return None


def policy_spec(policy: Policy) -> dict[str, Any]:
    """The policy as JSON data, with every set written as a sorted list (stable diffs)."""
    document: dict[str, Any] = policy.model_dump(mode="json")
    for grant in document["grants"]:
        grant["scopes"] = sorted(grant["scopes"])
        grant["deny"] = sorted(grant["deny"])
    return document


def _no_duplicates(field: str, names: list[str]) -> None:
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise SpecError(field, f"duplicate name(s) {repeated}")
