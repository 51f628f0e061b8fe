"""Compiling a `Workflow` into plain LangGraph.

Built back to front: each step is added knowing where the workflow goes after it (an
`Entry`: a function of the state that names the next node — or sends to several — and
the path map of every node it may name). Every edge is conditional, so that any step can
end the run (`halted`), a `when` can skip a step, a parallel step can fan out with
`Send`, and a loop can go round again. Agent steps are their agents' compiled graphs,
invoked as subgraphs by the step's node (tierflow.nodes.steps).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from tierflow.errors import SpecError
from tierflow.governance.policy import Policy
from tierflow.graphs.compile import recursion_limit
from tierflow.graphs.names import (
    ESCALATED_SUFFIX,
    HALTED,
    JOIN_PREFIX,
    LOOP_PREFIX,
    WORKFLOW_FINISH,
    WORKFLOW_START,
)
from tierflow.graphs.names import guard_node as guard_node_name
from tierflow.graphs.spec import Agent
from tierflow.graphs.workflow import (
    AgentStep,
    Approval,
    FunctionStep,
    Loop,
    Parallel,
    Workflow,
    walk,
)
from tierflow.nodes.context import RunContext
from tierflow.nodes.steps import (
    AgentCall,
    agent_node,
    approval_node,
    finish_node,
    function_node,
    guard_node,
    nested_node,
    start_node,
    status_of,
)
from tierflow.nodes.workflow_state import WorkflowInput, WorkflowState, halted, view_of
from tierflow.routing.fixed import FixedRouter
from tierflow.routing.ladder import next_stronger

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

Builder = StateGraph[Any, Any, Any, Any]
START_NODE = WORKFLOW_START
FINISH_NODE = WORKFLOW_FINISH
HALT = HALTED


@dataclass(frozen=True)
class Entry:
    """Where the workflow goes from here: `route(state)` names a label of `targets` (or
    returns `Send`s to the nodes of a parallel step)."""

    route: Callable[[Mapping[str, Any]], Any]
    targets: Mapping[Hashable, str]


def add_node(builder: Builder, name: str, node: Callable[..., Any]) -> None:
    # LangGraph types a node by its state's schema; these nodes read any mapping.
    builder.add_node(name, cast(Any, node))


def to(node: str) -> Entry:
    return Entry(lambda _state: node, {node: node})


def compile_workflow(
    workflow: Workflow, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    return build_workflow(workflow).compile(checkpointer=checkpointer, name=workflow.name)


def build_workflow(workflow: Workflow, *, nested: bool = False) -> Builder:
    """The uncompiled graph: start, the steps (the answer's guards right after the step
    that produces it), finish (a nested workflow has only its steps: its parent starts
    and finishes)."""
    builder: Builder = StateGraph(
        WorkflowState, context_schema=RunContext, input_schema=WorkflowInput
    )
    if nested:
        builder = StateGraph(WorkflowState, context_schema=RunContext)
    steps = Steps(builder, workflow, workflow.policy)
    if nested:
        exit_: Entry = to(END)
    else:
        add_node(builder, FINISH_NODE, finish_node(workflow.answer_step()))
        builder.add_edge(FINISH_NODE, END)
        exit_ = to(FINISH_NODE)
    entry = steps.sequence(workflow.steps, exit_)
    if nested:
        builder.add_conditional_edges(START, entry.route, dict(entry.targets))
    else:
        names = [step.name for step in walk(workflow.steps)]
        add_node(builder, START_NODE, start_node(workflow.objective, names))
        builder.add_edge(START, START_NODE)
        steps.edge(START_NODE, entry)
    _in_declared_order(builder, workflow)
    return builder


def _in_declared_order(builder: Builder, workflow: Workflow) -> None:
    """Nodes were added back to front; diagrams and lint list them in the order of the
    declaration (LangGraph keeps `nodes` as a plain dict and reads no order from it)."""
    first = [WORKFLOW_START] + [
        node
        for step in walk(workflow.steps)
        for node in (
            step.name,
            f"{step.name}{ESCALATED_SUFFIX}",
            f"{JOIN_PREFIX}{step.name}",
            f"{LOOP_PREFIX}{step.name}",
        )
    ]
    order = {name: index for index, name in enumerate(first)}
    ranked = sorted(builder.nodes, key=lambda node: order.get(node, len(order)))
    reordered = {node: builder.nodes[node] for node in ranked}
    builder.nodes.clear()
    builder.nodes.update(reordered)


class Steps:
    """Adds a workflow's steps to `builder`, back to front."""

    def __init__(self, builder: Builder, workflow: Workflow, policy: Policy | None) -> None:
        self.builder = builder
        self.workflow = workflow
        self.policy = policy

    def sequence(self, steps: tuple[Any, ...], after: Entry) -> Entry:
        entry = after
        for step in reversed(steps):
            entry = self.step(step, entry)
        return entry

    def step(self, step: Any, after: Entry) -> Entry:
        if step.name == self.workflow.answer_step() and self.workflow.guardrails:
            after = self.guards(after)
        own = self.add(step, after)
        when = step.when
        if when is None:
            return own

        def route(state: Mapping[str, Any]) -> Any:
            ran = asked(step.name, "when", when, view_of(state))
            return own.route(state) if ran else after.route(state)

        return Entry(route, {**after.targets, **own.targets})

    def guards(self, after: Entry) -> Entry:
        """The answer's guards, right after the step that produces it: a failure ends
        the run refused before any later step (an approval, a recorded refund) runs."""
        for guardrail in reversed(self.workflow.guardrails):
            node = guard_node_name(guardrail.name)
            add_node(self.builder, node, guard_node(guardrail, self.workflow.answer_step()))
            self.edge(node, after)
            after = to(node)
        return after

    def edge(self, source: str, entry: Entry) -> None:
        """`source` → wherever `entry` goes, or END once the run has halted."""

        def route(state: Mapping[str, Any]) -> Any:
            return HALT if halted(state) else entry.route(state)

        targets: dict[Hashable, str] = {**entry.targets, HALT: END}
        self.builder.add_conditional_edges(source, route, targets)

    # -- one step ---------------------------------------------------------------------

    def add(self, step: Any, after: Entry) -> Entry:
        if isinstance(step, AgentStep):
            return self.agent(step, after)
        if isinstance(step, FunctionStep):
            add_node(self.builder, step.name, function_node(step.name, step.fn, step.side_effects))
        elif isinstance(step, Approval):
            node = approval_node(step.name, step.message, audited=self.policy is not None)
            add_node(self.builder, step.name, node)
        elif isinstance(step, Workflow):
            add_node(self.builder, step.name, self.nested(step))
        elif isinstance(step, Parallel):
            return self.parallel(step, after)
        elif isinstance(step, Loop):
            return self.loop(step, after)
        else:  # the declaration checked every step's type
            raise SpecError(f"steps.{step.name}", f"can't compile a {type(step).__name__}")
        self.edge(step.name, after)
        return to(step.name)

    def nested(self, workflow: Workflow) -> Callable[[Mapping[str, Any]], Any]:
        """The node of a nested workflow: its own graph, invoked as a subgraph."""
        inherited = workflow.policy or self.policy
        copy = workflow.model_copy(update={"policy": inherited})
        graph = build_workflow(copy, nested=True).compile(name=workflow.name)
        return nested_node(workflow.name, graph, frozenset(s.name for s in walk(workflow.steps)))

    def agent(self, step: AgentStep, after: Entry, *, in_parallel: bool = False) -> Entry:
        first = self.agent_call(step, escalated=False)
        add_node(self.builder, step.name, agent_node(first))
        if step.on_fail != "escalate":
            if not in_parallel:
                self.edge(step.name, after)
            return to(step.name)
        if in_parallel:
            raise SpecError(
                f"steps.{step.name}.on_fail",
                "escalation inside a parallel step isn't supported; make the branch a "
                "nested Workflow",
            )
        second = self.agent_call(step, escalated=True)
        add_node(self.builder, second.label, agent_node(second))
        self.edge(second.label, after)

        def route(state: Mapping[str, Any]) -> Any:
            if state.get("failures", {}).get(first.label):
                return second.label  # labelled with its node, as every step's edge is
            return after.route(state)

        self.edge(step.name, Entry(route, {**after.targets, second.label: second.label}))
        return to(step.name)

    def agent_call(self, step: AgentStep, *, escalated: bool) -> AgentCall:
        agent = step_agent(step, self.policy, escalated=escalated)
        if step.budget_usd is not None and agent.policy is None:
            raise SpecError(
                f"steps.{step.name}.budget_usd",
                "a step's budget is kept by governance: give the workflow (or the agent) a Policy",
            )
        return AgentCall(
            step=step.name,
            goal=step.goal,
            workflow=self.workflow.name,
            subgraph=agent.compile(),
            input=step.input,
            as_json=step.as_json,
            # the escalated attempt is bounded by the workflow's budget, not the step's
            budget_usd=None if escalated else step.budget_usd,
            label=f"{step.name}{ESCALATED_SUFFIX}" if escalated else step.name,
            escalates=step.on_fail == "escalate" and not escalated,
        )

    def parallel(self, step: Parallel, after: Entry) -> Entry:
        join = f"{JOIN_PREFIX}{step.name}"
        add_node(self.builder, join, _joined(step.name))
        self.edge(join, after)
        for branch in step.steps:
            if isinstance(branch, AgentStep):
                self.agent(branch, after, in_parallel=True)
            elif isinstance(branch, FunctionStep):
                node = function_node(branch.name, branch.fn, branch.side_effects)
                add_node(self.builder, branch.name, node)
            else:
                add_node(self.builder, branch.name, self.nested(branch))
            self.builder.add_edge(branch.name, join)
        branches = step.steps

        def route(state: Mapping[str, Any]) -> Any:
            view = view_of(state)
            chosen = [b for b in branches if b.when is None or asked(b.name, "when", b.when, view)]
            if not chosen:
                return after.route(state)
            return [Send(b.name, dict(state)) for b in chosen]

        return Entry(route, {**after.targets, **{b.name: b.name for b in branches}})

    def loop(self, step: Loop, after: Entry) -> Entry:
        counter = f"{LOOP_PREFIX}{step.name}"
        body = self.sequence(step.steps, to(counter))
        add_node(self.builder, counter, _counted(step))

        def route(state: Mapping[str, Any]) -> Any:
            done = asked(step.name, "until", step.until, view_of(state))
            if done or state.get("loops", {}).get(step.name, 0) >= step.max_iterations:
                return after.route(state)
            return body.route(state)

        self.edge(counter, Entry(route, {**after.targets, **body.targets}))
        return body


def step_agent(step: AgentStep, policy: Policy | None, *, escalated: bool) -> Agent:
    """The step's agent with the step's intelligence (and the workflow's policy)."""
    update: dict[str, Any] = {}
    tiers = [t.name for t in step.agent.tiers]
    if escalated:
        stronger = next_stronger(step.tier, tiers) if step.tier else tiers[-1]
        if stronger is None:
            raise SpecError(
                f"steps.{step.name}.on_fail",
                f"escalate: {step.tier!r} is already the strongest tier of {tiers}",
            )
        update["router"] = FixedRouter(tier=stronger, effort="high")
    elif step.tier is not None:
        update["router"] = FixedRouter(tier=step.tier, effort=step.effort)
    elif step.router is not None:
        update["router"] = step.router
    if policy is not None and step.agent.policy is None:
        update["policy"] = policy
    return step.agent.model_copy(update=update) if update else step.agent


def _joined(name: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def join(state: Mapping[str, Any]) -> dict[str, Any]:
        return {"plan": status_of(name, "done")}

    return join


def _counted(step: Loop) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def count(state: Mapping[str, Any]) -> dict[str, Any]:
        done = state.get("loops", {}).get(step.name, 0) + 1
        update: dict[str, Any] = {"loops": {step.name: done}}
        if asked(step.name, "until", step.until, view_of(state)):
            update["plan"] = status_of(step.name, "done")
        elif done >= step.max_iterations:
            update["plan"] = status_of(step.name, "failed")
            if step.on_exhausted == "end":
                update["status"] = "failed"
                update["error"] = (
                    f"loop {step.name}: not done after {step.max_iterations} iterations"
                )
        return update

    return count


def run_limit(declared: Agent | Workflow) -> int:
    """LangGraph's superstep limit for a run of an agent or a workflow."""
    if isinstance(declared, Agent):
        return recursion_limit(declared)
    return workflow_recursion_limit(declared)


def workflow_recursion_limit(workflow: Workflow) -> int:
    """LangGraph's superstep limit for a run of `workflow` (its agent steps' subgraphs
    inherit it): enough for its longest agent and for every step of every loop
    iteration, each with its guard, join and counter nodes."""
    agents = [recursion_limit(a) for a in workflow.agents()]
    return max([*agents, 4 * _supersteps(workflow.steps) + 25])


def _supersteps(steps: tuple[Any, ...]) -> int:
    total = 0
    for step in steps:
        if isinstance(step, Loop):
            total += step.max_iterations * (_supersteps(step.steps) + 1)
        elif isinstance(step, Parallel):
            total += 2
        else:
            total += 2  # the step and, for an agent step, its escalation
    return total


def asked(step: str, what: str, condition: Callable[[Any], Any], view: Any) -> bool:
    """`condition(view)`, a step's `when` or a loop's `until`; what it raises ends the
    run naming the step (the run fails with the error, its last checkpoint kept)."""
    try:
        return bool(condition(view))
    except Exception as error:
        raise RuntimeError(
            f"step {step}: its {what} raised {type(error).__name__}: {error}"
        ) from error
