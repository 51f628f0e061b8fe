"""A workflow: a business process decomposed into steps, each with its own intelligence.

Steps run in the order declared. A step is an agent (`AgentStep`: its own tiers, tools,
guards and limits, at a declared tier and effort, behind a router, or as the agent
routes), a deterministic function (`FunctionStep`), a human approval (`Approval`), a
nested `Workflow`; `Parallel` runs steps at once (LangGraph `Send`) and joins them;
`Loop` repeats steps until a condition holds, at most `max_iterations` times. Any step
may have a `when` condition: it runs only when that holds of the workflow's state.

Each step's output lands in the workflow's `results` under the step's name; a step
reads what it needs through its `input` function. `Workflow.compile()` builds plain
LangGraph (tierflow.graphs.workflow_compile); everything is checked here, when the
workflow is declared, with `SpecError`s naming the step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveInt, PrivateAttr, model_validator

from tierflow.errors import SpecError
from tierflow.foundation.spec import SpecModel
from tierflow.governance.policy import Policy
from tierflow.graphs.names import HALTED
from tierflow.graphs.spec import Agent, Tier, policy_spec
from tierflow.guardrails.base import Guardrail
from tierflow.routing.decision import Effort
from tierflow.routing.router import Router

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# What a step reads: the workflow's request and the results of the steps before it.
Reader = Callable[[Mapping[str, Any]], Any]
Condition = Callable[[Mapping[str, Any]], bool]


class StepBase(SpecModel):
    spec_prefix: ClassVar[str | None] = ""

    name: str
    # Runs only when this holds of the workflow's view (`request`, `results`); else skipped.
    when: Condition | None = None

    @model_validator(mode="after")
    def _named(self) -> StepBase:
        if not STEP_NAME.match(self.name):
            raise SpecError(
                "name", f"{self.name!r}: lower-case letters, digits and _, starting with a letter"
            )
        if self.name == HALTED:
            raise SpecError(
                "name", f"{HALTED!r} is reserved: it labels the exit of a run a step ended"
            )
        return self

    def kind(self) -> str:
        return type(self).__name__

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind(), "name": self.name, "when": _callable_name(self.when)}


class AgentStep(StepBase):
    """An agent as a step. Its intelligence: `tier` (and `effort`) fixed, a `router` of
    its own, or neither — the agent's own router. `input(view)` is the request it is
    sent (default: the workflow's request with the results so far); its answer is the
    step's output (`as_json`: parsed). `budget_usd` caps the step within the workflow's
    budget; when the step fails (its budget spent, its guards refusing, an error),
    `on_fail` ends the workflow or escalates once to the agent's next stronger tier."""

    agent: Agent
    goal: str
    tier: str | None = None
    effort: Effort | None = None
    router: Any = None
    input: Reader | None = None
    as_json: bool = False
    budget_usd: float | None = Field(default=None, gt=0)
    on_fail: Literal["end", "escalate"] = "end"

    @model_validator(mode="after")
    def _intelligence(self) -> AgentStep:
        tiers = [t.name for t in self.agent.tiers]
        if self.tier is not None and self.tier not in tiers:
            raise SpecError("tier", f"{self.tier!r} is not a tier of {self.agent.name!r}: {tiers}")
        if self.effort is not None and self.tier is None:
            raise SpecError("effort", "declare the tier the effort is for")
        if self.router is not None:
            if self.tier is not None:
                raise SpecError("router", "declare a tier or a router, not both")
            if not isinstance(self.router, Router):
                raise SpecError("router", "must have name, tiers() and route(request, state)")
            unknown = self.router.tiers() - set(tiers)
            if unknown:
                raise SpecError("router", f"routes to tier(s) {sorted(unknown)} not in {tiers}")
        if not self.goal.strip():
            raise SpecError("goal", "say what the step is for (it is shown to the model)")
        if self.on_fail == "escalate" and self.tier is not None and self.tier == tiers[-1]:
            raise SpecError(
                "on_fail", f"escalate: {self.tier!r} is already the strongest tier of {tiers}"
            )
        return self

    def intelligence(self) -> str:
        """`fast/low`, `router:NAME` or `agent` — what the step declared."""
        if self.tier is not None:
            return f"{self.tier}/{self.effort}" if self.effort else self.tier
        if self.router is not None:
            return f"router:{self.router.name}"
        return "agent"

    def spec(self) -> dict[str, Any]:
        return {
            **super().spec(),
            "agent": json.loads(self.agent.to_json()),
            "goal": self.goal,
            "intelligence": self.intelligence(),
            "budget_usd": self.budget_usd,
            "on_fail": self.on_fail,
            "input": _callable_name(self.input),
            "as_json": self.as_json,
        }


class FunctionStep(StepBase):
    """A deterministic step: `fn(view)`'s value is its output. `side_effects=True`: the
    call is recorded in the run store and a replayed step returns the recorded value
    instead of calling `fn` again (`fn(view, context)` gets its idempotency key)."""

    fn: Callable[..., Any]
    side_effects: bool = False

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "fn": _callable_name(self.fn), "side_effects": self.side_effects}


class Approval(StepBase):
    """A human approval: the run pauses (`tierflow resume THREAD --approve | --reject`)
    showing `message(view)`; a rejection ends the workflow, status `refused`."""

    message: str | Reader

    def spec(self) -> dict[str, Any]:
        text = self.message if isinstance(self.message, str) else _callable_name(self.message)
        return {**super().spec(), "message": text}


class Parallel(StepBase):
    """`steps` at once (each a single step — a sequence is a nested `Workflow`); the
    workflow goes on when all are done. Their outputs land under their own names."""

    steps: tuple[Any, ...]

    @model_validator(mode="after")
    def _branches(self) -> Parallel:
        if len(self.steps) < 2:
            raise SpecError("steps", "a parallel step needs at least two branches")
        for index, branch in enumerate(self.steps):
            if not isinstance(branch, AgentStep | FunctionStep | Workflow):
                raise SpecError(
                    f"steps.{index}",
                    "a branch is an AgentStep, a FunctionStep or a Workflow "
                    f"(not {type(branch).__name__})",
                )
            if isinstance(branch, AgentStep) and branch.on_fail == "escalate":
                raise SpecError(
                    f"steps.{index}.on_fail",
                    "escalation inside a parallel step isn't supported; make the branch a "
                    "nested Workflow",
                )
        return self

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "steps": [s.spec() for s in self.steps]}


class Loop(StepBase):
    """`steps` again and again until `until(view)` holds after an iteration, at most
    `max_iterations` times; `on_exhausted` then goes on or ends the workflow (`failed`)."""

    steps: tuple[Any, ...]
    until: Condition
    max_iterations: PositiveInt
    on_exhausted: Literal["continue", "end"] = "end"

    @model_validator(mode="after")
    def _body(self) -> Loop:
        if not self.steps:
            raise SpecError("steps", "a loop needs at least one step")
        for index, step in enumerate(self.steps):
            if not isinstance(step, (*STEP_TYPES, Workflow)):
                raise SpecError(f"steps.{index}", f"is a {type(step).__name__}, not a step")
        return self

    def spec(self) -> dict[str, Any]:
        return {
            **super().spec(),
            "steps": [s.spec() for s in self.steps],
            "until": _callable_name(self.until),
            "max_iterations": self.max_iterations,
            "on_exhausted": self.on_exhausted,
        }


Step = AgentStep | FunctionStep | Approval | Parallel | Loop


class Workflow(StepBase):
    """A declared workflow. `answer` names the step whose output is the answer (default:
    the last one); `guardrails` check it right after that step — a failure ends the run
    refused before any later step runs — and it is what the user gets at the end. `policy` governs
    every agent step (one principal, budget and audit trail): its `run_budget_usd` is the
    workflow's budget, each step's `budget_usd` within it."""

    objective: str
    steps: tuple[Any, ...]
    answer: str | None = None
    guardrails: tuple[Any, ...] = ()
    policy: Policy | None = None
    resources: dict[str, Callable[[], Any]] = Field(default_factory=dict)
    _compiled: tuple[int, Any] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Workflow:
        if not self.steps:
            raise SpecError("steps", "a workflow needs at least one step")
        for index, step in enumerate(self.steps):
            if not isinstance(step, (*STEP_TYPES, Workflow)):
                raise SpecError(f"steps.{index}", f"is a {type(step).__name__}, not a step")
        names = [step.name for step in walk(self.steps)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError("steps", f"step names must be unique; repeated: {duplicates}")
        answer = self.answer or self.steps[-1].name
        if answer not in names:
            raise SpecError("answer", f"{answer!r} is not a step: {names}")
        for index, guardrail in enumerate(self.guardrails):
            if not isinstance(guardrail, Guardrail):
                raise SpecError(f"guardrails.{index}", "is not a guardrail")
        if self.guardrails and answer not in [step.name for step in self.steps]:
            raise SpecError(
                "answer",
                f"{answer!r}: the step whose answer is guarded must be one of the workflow's "
                "own steps (not inside a parallel step, a loop or a nested workflow)",
            )
        for step in walk(self.steps):
            self._check_agent_step(step)
        # The run builds every resource an agent step's tools need (tierflow.runs).
        merged = {name: f for a in self.agents() for name, f in a.resources.items()}
        object.__setattr__(self, "resources", {**merged, **self.resources})
        return self

    def agents(self) -> list[Agent]:
        """The agents of its agent steps, nested ones included, in declaration order."""
        return [step.agent for step in walk(self.steps) if isinstance(step, AgentStep)]

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers its agents declare (by name, the first declaration of each): what a
        provider file serves (`--provider`)."""
        found: dict[str, Tier] = {}
        for agent in self.agents():
            for tier in agent.tiers:
                found.setdefault(tier.name, tier)
        return tuple(found.values())

    def with_models(self, **models: Any) -> Workflow:
        """A copy whose agents' tiers are served by `models` (tier name → model)."""
        return self.model_copy(update={"steps": _with_models(self.steps, models)})

    def _check_agent_step(self, step: Any) -> None:
        if not isinstance(step, AgentStep) or self.policy is None:
            return
        if step.agent.policy is not None and step.agent.policy != self.policy:
            raise SpecError(
                f"steps.{step.name}.agent.policy",
                "a governed workflow's agents share its policy; declare none on the agent",
            )

    def answer_step(self) -> str:
        return self.answer or self.steps[-1].name

    def to_json(self) -> str:
        """The whole declaration as stable, sorted JSON (its fingerprint)."""
        return json.dumps(self.spec(), indent=2, sort_keys=True)

    def spec(self) -> dict[str, Any]:
        return {
            **super().spec(),
            "objective": self.objective,
            "steps": [s.spec() for s in self.steps],
            "answer": self.answer_step(),
            "guardrails": [g.spec() for g in self.guardrails],
            "policy": None if self.policy is None else policy_spec(self.policy),
            **({"resources": sorted(self.resources)} if self.resources else {}),
        }

    def compile(
        self, checkpointer: BaseCheckpointSaver[Any] | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Plain LangGraph: agent steps as subgraphs, checkpointed like an agent."""
        from tierflow.graphs.workflow_compile import compile_workflow

        return compile_workflow(self, checkpointer)


STEP_TYPES = (AgentStep, FunctionStep, Approval, Parallel, Loop)


def _with_models(steps: tuple[Any, ...], models: Mapping[str, Any]) -> tuple[Any, ...]:
    copied: list[Any] = []
    for step in steps:
        if isinstance(step, AgentStep):
            names = {tier.name for tier in step.agent.tiers}
            own = {name: model for name, model in models.items() if name in names}
            copied.append(step.model_copy(update={"agent": step.agent.with_models(**own)}))
        elif isinstance(step, Parallel | Loop | Workflow):
            copied.append(step.model_copy(update={"steps": _with_models(step.steps, models)}))
        else:
            copied.append(step)
    return tuple(copied)


def walk(steps: Sequence[Any]) -> Iterator[Any]:
    """Every step, nested ones included (a nested workflow's own steps too)."""
    for step in steps:
        yield step
        if isinstance(step, Parallel | Loop | Workflow):
            yield from walk(step.steps)


def _callable_name(fn: Callable[..., Any] | None) -> str | None:
    if fn is None:
        return None
    # Not the module: it depends on how the file was imported (see tierflow.tools.once).
    return str(getattr(fn, "__qualname__", type(fn).__name__))


# What `tierflow run` and a `Runner` run: an agent or a workflow.
Declared = Agent | Workflow
