"""Compile an `Agent` into a plain LangGraph `StateGraph` with the shape of DESIGN.md."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph

from tierflow.graphs.lint import lint
from tierflow.graphs.names import ACT, OBSERVE, ROUTE, guard_node, model_node
from tierflow.graphs.shape import IO, NOTES, shape_of
from tierflow.models.resolve import prompt_cache_key
from tierflow.nodes.act import make_act_node
from tierflow.nodes.context import Governing, RunContext
from tierflow.nodes.guard import guard_outcome, make_guard_node
from tierflow.nodes.model import ModelNode, TierModel
from tierflow.nodes.observe import observe
from tierflow.nodes.route import make_route_node
from tierflow.nodes.state import (
    ACT_IO,
    GUARD_IO,
    MODEL_IO,
    OBSERVE_IO,
    ROUTE_IO,
    AgentInput,
    AgentState,
)
from tierflow.tools.declare import Tool

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    from tierflow.graphs.spec import Agent

ModelOutcome = Literal["tool_calls", "answer", "limit", "budget_exceeded"]


def after_model(state: AgentState) -> ModelOutcome:
    if state.get("status") == "failed":
        return "limit"
    if state.get("status") == "budget_exceeded":
        return "budget_exceeded"
    messages = state.get("messages", [])
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
        return "tool_calls"
    return "answer"


def chosen_tier(state: AgentState) -> str:
    route = state.get("route")
    if route is None:
        raise ValueError("route: no decision in state")
    return route["tier"]


def after_observe(state: AgentState) -> str:
    """Back to the chosen tier — or to `route` when a guard escalates."""
    return "escalate" if state.get("escalation") else chosen_tier(state)


def build_graph(agent: Agent) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled `StateGraph` (nodes, edges, path maps) of `agent`. What is
    run-specific — governance, principal, resources — reaches its nodes through the run
    context (`RunContext`), so one compiled graph serves every run."""
    tools = agent.all_tools()
    tier_names = [t.name for t in agent.tiers]
    guards = [guard_node(g.name) for g in agent.guardrails]
    governing = Governing(agent.policy, agent.name)
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        AgentState, context_schema=RunContext, input_schema=AgentInput
    )
    to_tier: dict[Hashable, str] = {t: model_node(t) for t in tier_names}

    builder.add_node(
        ROUTE, make_route_node(agent.router, tier_names, governing), metadata={IO: ROUTE_IO}
    )
    builder.add_node(
        ACT,
        make_act_node(tools, agent.limits.max_tool_calls_per_turn, governing, agent.resources),
        metadata={NOTES: tool_guard_notes(tools), IO: ACT_IO},
    )
    if guards:  # the way back from a failed guard
        builder.add_node(OBSERVE, observe, metadata={IO: OBSERVE_IO})
    builder.add_edge(START, ROUTE)
    builder.add_conditional_edges(ROUTE, chosen_tier, to_tier)
    add_tiers(builder, agent, tools, governing, first_guard=guards[0] if guards else END)
    builder.add_conditional_edges(ACT, chosen_tier, to_tier)
    if guards:
        builder.add_conditional_edges(OBSERVE, after_observe, {**to_tier, "escalate": ROUTE})
    add_guards(builder, agent, guards, ladder=tier_names)
    return builder


def add_tiers(
    builder: StateGraph[Any, Any, Any, Any],
    agent: Agent,
    tools: Sequence[Tool],
    governing: Governing,
    *,
    first_guard: str,
) -> None:
    """One model node per tier, and its exits: to `act`, to the first guard (or END),
    to END at a limit or, governed, when the budget is exceeded."""
    for tier in agent.tiers:
        node = model_node(tier.name)
        model = ModelNode(
            tier.name,
            model=TierModel(
                tier.name,
                tier.model,
                tools,
                tier.max_output_tokens,
                cache_key=prompt_cache_key(agent.name, tier.name),
            ),
            price=tier.price,
            instructions=agent.instructions,
            max_steps=agent.limits.max_steps,
            answer_is_final=first_guard == END,
            governing=governing,
        )
        builder.add_node(node, model.node(), metadata={IO: MODEL_IO})
        exits: dict[Hashable, str] = {"tool_calls": ACT, "answer": first_guard, "limit": END}
        if agent.policy is not None:
            exits["budget_exceeded"] = END
        builder.add_conditional_edges(node, after_model, exits)


def add_guards(
    builder: StateGraph[Any, Any, Any, Any],
    agent: Agent,
    guards: Sequence[str],
    *,
    ladder: Sequence[str],
) -> None:
    """The guard nodes (named `guards`), in declaration order, each passing to the
    next and the last to END; a failure goes to `observe` or ends the run."""
    for index, guardrail in enumerate(agent.guardrails):
        is_last = index == len(guards) - 1
        builder.add_node(
            guards[index],
            make_guard_node(guardrail, is_last, ladder=ladder),
            metadata={IO: GUARD_IO},
        )
        next_node = END if is_last else guards[index + 1]
        builder.add_conditional_edges(
            guards[index],
            guard_outcome,
            {"pass": next_node, "reask": OBSERVE, "escalate": OBSERVE, "refuse": END},
        )


def tool_guard_notes(tools: Sequence[Tool]) -> tuple[str, ...]:
    """What `act` checks, for diagrams: each tool's argument guards (before the call)
    and output guards (before the model reads the result)."""
    notes = [
        f"{tool.name}.{argument} ⟵ {guard.name}"
        for tool in tools
        for argument, guard in tool.guards.items()
    ]
    notes += [
        f"{tool.name} ⟶ {guard.name}" + ("" if key == "*" else f" ({key})")
        for tool in tools
        for key, guard in tool.output_guards.items()
    ]
    return tuple(notes)


def compile_agent(
    agent: Agent, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """`agent`'s compiled graph on `checkpointer`. The graph is built, linted and
    compiled once per agent per process; every call after the first is a shallow copy
    with this checkpointer (LangGraph's `Pregel.copy`, no recompilation). A governed
    agent's checkpoints are masked with its policy's redaction."""
    base = _compiled(agent)
    if checkpointer is None:
        return base
    if agent.policy is not None:
        from tierflow.governance.redact import redact_checkpoints

        checkpointer = redact_checkpoints(checkpointer, agent.policy.redaction)
    return base.copy({"checkpointer": checkpointer})


# How many graphs this process compiled (diagnostics and the compile-once test).
COMPILED: dict[str, int] = {"graphs": 0}


def _compiled(agent: Agent) -> CompiledStateGraph[Any, Any, Any, Any]:
    cached = agent.compiled_cache()
    if cached is not None:
        return cached
    builder = build_graph(agent)
    lint(shape_of(builder))
    compiled = builder.compile(name=agent.name)
    COMPILED["graphs"] += 1
    # LangGraph's own superstep limit must never stop a run `Limits` allows.
    compiled = compiled.with_config(recursion_limit=recursion_limit(agent))
    agent.compiled_cache(compiled)
    return compiled


def recursion_limit(agent: Agent) -> int:
    """LangGraph's superstep limit for a run of `agent`: enough for `Limits.max_steps`
    model steps, each passing route, model, act, observe and every guard."""
    per_step = 4 + len(agent.guardrails)
    return agent.limits.max_steps * per_step + 25
