"""Compile an `Agent` into a plain LangGraph `StateGraph` with the shape of DESIGN.md."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph

from tierflow.errors import SpecError
from tierflow.graphs.lint import lint
from tierflow.graphs.names import ACT, OBSERVE, REMIND, ROUTE, guard_node, model_node
from tierflow.graphs.shape import NOTES, shape_of
from tierflow.nodes.act import make_act_node
from tierflow.nodes.governed import Governance, governance_for
from tierflow.nodes.guard import guard_outcome, make_guard_node
from tierflow.nodes.model import TierModel, make_model_node
from tierflow.nodes.observe import observe
from tierflow.nodes.remind import make_remind_node
from tierflow.nodes.route import make_route_node
from tierflow.nodes.state import AgentInput, AgentState
from tierflow.nodes.tools import Tool

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


def build_graph(
    agent: Agent, governance: Governance | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled `StateGraph` (nodes, edges, path maps) of `agent`. `governance`
    is what its nodes apply when run; an agent with a policy has a `budget_exceeded`
    exit from every model node whether or not it is given."""
    tools = agent.all_tools()
    tier_names = [t.name for t in agent.tiers]
    guards = [guard_node(g.name) for g in agent.guardrails]
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(AgentState, input_schema=AgentInput)

    builder.add_node(REMIND, make_remind_node(agent.limits.max_steps))
    builder.add_node(ROUTE, make_route_node(agent.router, tier_names))
    builder.add_node(
        ACT,
        make_act_node(tools, agent.limits.max_tool_calls_per_turn, governance),
        metadata={NOTES: tool_guard_notes(tools)},
    )
    builder.add_node(OBSERVE, observe)
    builder.add_edge(START, REMIND)
    builder.add_edge(REMIND, ROUTE)
    builder.add_conditional_edges(ROUTE, chosen_tier, {t: model_node(t) for t in tier_names})

    first_guard = guards[0] if guards else END
    for tier in agent.tiers:
        node = model_node(tier.name)
        builder.add_node(
            node,
            make_model_node(
                tier.name,
                model=TierModel(tier.name, tier.model, tools),
                price=tier.price,
                instructions=agent.instructions,
                max_steps=agent.limits.max_steps,
                answer_is_final=not guards,
                governance=governance,
            ),
        )
        exits: dict[Hashable, str] = {"tool_calls": ACT, "answer": first_guard, "limit": END}
        if agent.policy is not None:
            exits["budget_exceeded"] = END
        builder.add_conditional_edges(node, after_model, exits)
    builder.add_edge(ACT, OBSERVE)
    builder.add_edge(OBSERVE, REMIND)

    for index, guardrail in enumerate(agent.guardrails):
        is_last = index == len(guards) - 1
        builder.add_node(
            guards[index], make_guard_node(guardrail, is_last, strongest_tier=tier_names[-1])
        )
        next_node = END if is_last else guards[index + 1]
        builder.add_conditional_edges(
            guards[index],
            guard_outcome,
            {"pass": next_node, "reask": OBSERVE, "escalate": OBSERVE, "refuse": END},
        )
    return builder


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
    agent: Agent,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    governance: Governance | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    if agent.policy is not None and governance is None:
        governance = _default_governance(agent, checkpointer)
    builder = build_graph(agent, governance)
    lint(shape_of(builder))
    compiled = builder.compile(checkpointer=checkpointer, name=agent.name)
    # LangGraph's own superstep limit must never stop a run `Limits` allows.
    return compiled.with_config(recursion_limit=recursion_limit(agent))


def recursion_limit(agent: Agent) -> int:
    """LangGraph's superstep limit for a run of `agent`: enough for `Limits.max_steps`
    model steps, each passing route, remind, model, act, observe and every guard."""
    per_step = 5 + len(agent.guardrails)
    return agent.limits.max_steps * per_step + 25


def _default_governance(agent: Agent, checkpointer: BaseCheckpointSaver[Any] | None) -> Governance:
    """An agent with a policy keeps its governance tables in the run store, which
    tierflow's own savers (SQLite, Postgres) name; any other checkpointer needs
    `governance=`."""
    from tierflow.checkpoints.saver import SqliteStore

    assert agent.policy is not None
    if isinstance(checkpointer, SqliteStore):
        return governance_for(agent.policy, checkpointer.path, agent=agent.name)
    url = getattr(checkpointer, "url", None)
    if isinstance(url, str):  # tierflow.checkpoints.open("postgresql://...")
        return governance_for(agent.policy, url, agent=agent.name)
    raise SpecError(
        "policy",
        "an agent with a policy keeps its audit log, budgets and side effects in the run "
        "store: compile it with checkpointer=tierflow.checkpoints.open(PATH or URL), "
        "or pass governance=governance_for(policy, PATH or URL, agent=...)",
    )
