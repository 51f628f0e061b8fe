"""The compiled graph has the design's shape, lint guards it, and LangGraph works on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from tierflow import OutputSchema, SpecError, Turn, tool
from tierflow.graphs import ascii_art, build_graph, mermaid, shape_of
from tierflow.graphs.draw import io_table
from tierflow.graphs.lint import io_problems, lint, problems
from tierflow.graphs.shape import Edge, Shape


class Reply(BaseModel):
    answer: str


class Short(BaseModel):
    answer: str


@tool
def lookup(order_id: int) -> str:
    """Look up an order."""
    return f"order {order_id}: shipped"


def diagram(scripted: Scripted) -> str:
    return mermaid(shape_of(build_graph(scripted.agent)))


@pytest.fixture
def guarded(scripted_agent: Callable[..., Scripted]) -> Scripted:
    return scripted_agent(
        [Turn(calls=(("lookup", {"order_id": 7}),)), Turn(text='{"answer": "shipped"}')],
        tools=(lookup,),
        guardrails=(OutputSchema(Reply),),
    )


def test_mermaid_with_one_guard(guarded: Scripted, snapshot: Any) -> None:
    assert diagram(guarded) == snapshot


def test_mermaid_with_two_guards(scripted_agent: Callable[..., Scripted], snapshot: Any) -> None:
    agent = scripted_agent(
        tools=(lookup,),
        guardrails=(OutputSchema(Reply, name="a"), OutputSchema(Short, name="b")),
    )
    text = diagram(agent)
    assert text == snapshot
    assert '    guard_a -. "pass" .-> guard_b\n' in text
    assert '    guard_b -. "pass | refuse" .-> __end__\n' in text
    assert '    model_fast -. "answer" .-> guard_a\n' in text


def test_mermaid_without_guards(scripted_agent: Callable[..., Scripted], snapshot: Any) -> None:
    text = diagram(scripted_agent(tools=(lookup,)))
    assert text == snapshot
    assert '    model_reasoning -. "answer | limit" .-> __end__\n' in text
    assert "guard" not in text


def test_shape_follows_the_design(guarded: Scripted) -> None:
    shape = shape_of(build_graph(guarded.agent))
    edges = {(e.source, e.target, e.label) for e in shape.edges}
    expected = {
        ("__start__", "route", None),
        ("route", "model.fast", "fast"),
        ("route", "model.reasoning", "reasoning"),
        # ReAct: act writes the observations and goes back to the chosen tier.
        ("act", "model.fast", "fast"),
        ("act", "model.reasoning", "reasoning"),
        # A failed guard's feedback: observe, then the chosen tier — or route on escalation.
        ("guard.schema", "observe", "reask | escalate"),
        ("observe", "model.fast", "fast"),
        ("observe", "model.reasoning", "reasoning"),
        ("observe", "route", "escalate"),
        ("guard.schema", "__end__", "pass | refuse"),
    }
    for tier in ("fast", "reasoning"):
        expected |= {
            (f"model.{tier}", "act", "tool_calls"),
            (f"model.{tier}", "guard.schema", "answer"),
            (f"model.{tier}", "__end__", "limit"),
        }
    assert edges == expected
    assert problems(shape) == []


# --- lint -------------------------------------------------------------------------------


def leaky_shape() -> Shape:
    """A model whose answer goes straight to END although a guard exists."""
    nodes = ("__start__", "model.fast", "guard.schema", "__end__")
    edges = (
        Edge("__start__", "model.fast", None),
        Edge("model.fast", "guard.schema", "checked"),
        Edge("model.fast", "__end__", "answer"),
        Edge("guard.schema", "__end__", "pass"),
    )
    return Shape(nodes=nodes, edges=edges)


def test_lint_finds_an_answer_that_bypasses_the_guard() -> None:
    found = problems(leaky_shape())
    assert len(found) == 1
    assert "model.fast" in found[0] and "without passing guard.schema" in found[0]


def test_non_answer_exits_may_skip_the_guard() -> None:
    shape = leaky_shape()
    fixed = Shape(
        nodes=shape.nodes,
        edges=tuple(
            Edge(e.source, e.target, "limit") if e.label == "answer" else e for e in shape.edges
        ),
    )
    assert problems(fixed) == []


def test_lint_finds_unreachable_and_stuck_nodes() -> None:
    shape = Shape(
        nodes=("__start__", "a", "orphan", "sink", "__end__"),
        edges=(Edge("__start__", "a", None), Edge("a", "__end__", None), Edge("a", "sink", None)),
    )
    found = problems(shape)
    assert any("unreachable from START: ['orphan']" in p for p in found)
    assert any("cannot reach END" in p and "'sink'" in p for p in found)


def test_lint_raises_with_the_diagram() -> None:
    with pytest.raises(SpecError) as caught:
        lint(leaky_shape())
    assert caught.value.field == "graph"
    assert "flowchart TD" in str(caught.value)
    assert "without passing guard.schema" in str(caught.value)


def test_ascii_art_shows_design_labels(guarded: Scripted) -> None:
    art = ascii_art(shape_of(build_graph(guarded.agent)))
    assert "model:fast" in art
    assert "model:reasoning" in art
    assert "guard:schema" in art


# --- a real LangGraph graph -------------------------------------------------------------


def test_stream_updates_follow_the_graph(guarded: Scripted) -> None:
    graph = guarded.graph()
    nodes = [
        node
        for update in graph.stream(
            {"messages": [HumanMessage("where is order 7")]}, thread(), stream_mode="updates"
        )
        for node in update
    ]
    # route once per request; a ReAct turn is two steps (model, act), as hand-built.
    assert nodes == ["route", "model.fast", "act", "model.fast", "guard.schema"]


def test_state_history_and_update_state(guarded: Scripted) -> None:
    graph = guarded.graph()
    config = thread()
    graph.invoke({"messages": [HumanMessage("where is order 7")]}, config)

    snapshot = graph.get_state(config)
    assert snapshot.next == ()
    assert snapshot.values["status"] == "done"
    assert snapshot.values["answer"] == '{"answer": "shipped"}'

    history = list(graph.get_state_history(config))
    assert history[0].config == snapshot.config
    # Newest first; the run paused before every node in turn.
    waiting = [h.next for h in reversed(history)]
    assert ("act",) in waiting and ("guard.schema",) in waiting
    before_act = next(h for h in history if h.next == ("act",))
    assert isinstance(before_act.values["messages"][-1], AIMessage)
    assert before_act.values["messages"][-1].tool_calls[0]["name"] == "lookup"

    graph.update_state(config, {"answer": "edited by a human"})
    assert graph.get_state(config).values["answer"] == "edited by a human"
    assert len(list(graph.get_state_history(config))) == len(history) + 1


# --- what nodes read and write --------------------------------------------------------------


def test_every_node_declares_what_it_reads_and_writes(guarded: Scripted) -> None:
    shape = shape_of(build_graph(guarded.agent))
    declared = {node for node, _, _ in shape.io}
    assert declared == set(shape.nodes) - {"__start__", "__end__"}
    assert io_problems(shape) == []
    io = {node: (set(reads), set(writes)) for node, reads, writes in shape.io}
    # The ReAct turn: the model writes its message and cost, act the observations.
    assert {"messages", "calls", "steps"} <= io["model.fast"][1]
    assert io["act"][1] == {"messages", "plan", "verdicts"}
    table = io_table(shape)
    assert table.splitlines()[0] == "| node | reads | writes |"
    assert "| act | messages, steps, principal | messages, plan, verdicts |" in table


def test_lint_finds_reads_nobody_writes_and_keys_the_state_lacks(guarded: Scripted) -> None:
    shape = shape_of(build_graph(guarded.agent))
    broken = Shape(
        nodes=shape.nodes,
        edges=shape.edges,
        io=((*shape.io, ("act", ("budget_left",), ("mood",)))),
        state_keys=shape.state_keys,
        input_keys=shape.input_keys,
    )
    found = io_problems(broken)
    assert "act declares keys the state doesn't have: ['budget_left', 'mood']" in found
    assert "act reads ['budget_left'], which no node writes" in found


def test_dual_nodes_are_langgraphs_own_runnable(guarded: Scripted) -> None:
    """`nodes/dual.py` builds on LangGraph's private `RunnableCallable` (LangChain's
    `RunnableLambda` inspects signatures on every call): pinned here, so a LangGraph
    upgrade that moves it fails this test, not a user's run."""
    from langgraph._internal._runnable import RunnableCallable

    graph = guarded.graph()
    for node in ("act", "model.fast", "model.reasoning"):
        bound = graph.builder.nodes[node].runnable
        assert isinstance(bound, RunnableCallable)
        assert bound.afunc is not None  # a real async body, not the sync one in a thread
