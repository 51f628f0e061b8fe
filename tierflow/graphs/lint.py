"""Graph lint: the compiled shape keeps tierflow's promises, checked with networkx.

- every node is reachable from START, and END is reachable from every node;
- every path from a model node to END that carries an answer passes every guard node;
- every cycle has a bounded exit: a node on it can leave for END by `limit` or `refuse`
  (a step budget or a retry budget), or is a workflow loop's counter (`loop.NAME`,
  bounded by its `max_iterations`), so no loop can run forever.
A workflow's answer leaves through `workflow.finish`: every path from START to it must
pass every guard (a step that ends the run leaves by `halted`, with no answer).
A violation is a `SpecError` whose message includes the diagram. networkx loads with
the first lint (the first compile), not with `import tierflow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierflow.errors import SpecError
from tierflow.graphs.draw import mermaid
from tierflow.graphs.names import (
    GUARD_PREFIX,
    HALTED,
    LOOP_PREFIX,
    MODEL_PREFIX,
    NON_ANSWER_EXITS,
    WORKFLOW_FINISH,
)
from tierflow.graphs.shape import Shape

if TYPE_CHECKING:
    import networkx as nx

START, END = "__start__", "__end__"


def to_networkx(shape: Shape) -> nx.MultiDiGraph:
    """One networkx edge per outcome, so each keeps its own label."""
    import networkx as nx

    digraph = nx.MultiDiGraph()
    digraph.add_nodes_from(shape.nodes)
    for edge in shape.edges:
        for label in (edge.label or "").split(" | "):
            digraph.add_edge(edge.source, edge.target, label=label or None)
    return digraph


def problems(shape: Shape) -> list[str]:
    import networkx as nx

    digraph = to_networkx(shape)
    found: list[str] = []
    unreachable = set(digraph) - nx.descendants(digraph, START) - {START}
    if unreachable:
        found.append(f"unreachable from START: {sorted(unreachable)}")
    stuck = set(digraph) - nx.ancestors(digraph, END) - {END}
    if stuck:
        found.append(f"cannot reach END: {sorted(stuck)}")
    answers = nx.DiGraph()
    answers.add_nodes_from(digraph)
    answers.add_edges_from(
        (u, v)
        for u, v, label in digraph.edges(data="label")
        if label not in NON_ANSWER_EXITS and label != HALTED
    )
    # where answers come from: an agent's model nodes; a workflow's, all of it
    models = [n for n in digraph if n.startswith(MODEL_PREFIX)]
    if WORKFLOW_FINISH in digraph:
        models = [START]
    for guard in (n for n in digraph if n.startswith(GUARD_PREFIX)):
        bypass = answers.copy()
        bypass.remove_node(guard)
        leaking = [m for m in models if nx.has_path(bypass, m, END)]
        if leaking:
            found.append(f"an answer from {leaking} can reach END without passing {guard}")
    bounded = {u for u, v, label in digraph.edges(data="label") if label in NON_ANSWER_EXITS}
    bounded |= {n for n in digraph if n.startswith(LOOP_PREFIX)}
    for cycle in nx.simple_cycles(nx.DiGraph(digraph)):
        if not bounded.intersection(cycle):
            found.append(f"the cycle {' → '.join([*cycle, cycle[0]])} has no bounded exit")
    return found


def io_problems(shape: Shape) -> list[str]:
    """Declared reads and writes: every key is the state's, and every key a node reads
    is written by some node or by the run's input."""
    found: list[str] = []
    written = set(shape.input_keys).union(*(writes for _, _, writes in shape.io))
    for node, reads, writes in shape.io:
        foreign = sorted(set(reads + writes) - shape.state_keys)
        if shape.state_keys and foreign:
            found.append(f"{node} declares keys the state doesn't have: {foreign}")
        unwritten = sorted(set(reads) - written)
        if unwritten:
            found.append(f"{node} reads {unwritten}, which no node writes")
    return found


def lint(shape: Shape) -> None:
    """Raise `SpecError` (with the diagram) if the graph breaks a promise."""
    found = problems(shape) + io_problems(shape)
    if found:
        raise SpecError("graph", "; ".join(found) + "\n" + mermaid(shape))


def shape_for(value: object, source: str) -> Shape:
    """The shape of an agent, a `StateGraph` builder or a compiled LangGraph graph."""
    from langgraph.graph import StateGraph
    from langgraph.graph.state import CompiledStateGraph

    from tierflow.graphs.compile import build_graph
    from tierflow.graphs.shape import shape_of
    from tierflow.graphs.spec import Agent
    from tierflow.graphs.workflow import Workflow
    from tierflow.graphs.workflow_compile import build_workflow

    if isinstance(value, Agent):
        return shape_of(build_graph(value))
    if isinstance(value, Workflow):
        return shape_of(build_workflow(value))
    if isinstance(value, CompiledStateGraph):
        return shape_of(value.builder)
    if isinstance(value, StateGraph):
        return shape_of(value)
    raise SpecError(
        source, f"is a {type(value).__name__}: lint takes an Agent, a Workflow or a StateGraph"
    )
