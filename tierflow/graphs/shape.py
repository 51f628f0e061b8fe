"""The shape of a built graph as plain data: nodes and labelled edges.

Read from the `StateGraph` builder (its nodes, static edges and path maps) rather than
from `CompiledStateGraph.get_graph()`, which keeps one edge per (source, target) and so
drops an outcome like `refuse` when it shares its target with `pass`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str | None  # None for a static edge; outcome names for a conditional one

    @property
    def conditional(self) -> bool:
        return self.label is not None


# A node's `metadata` key for what diagrams print under its name (act: the tool guards).
NOTES = "tierflow_notes"
# A node's `metadata` key for what it reads from state and writes to it (a `NodeIO`).
IO = "tierflow_io"


@dataclass(frozen=True)
class Shape:
    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]
    notes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (node, lines under its name)
    # (node, keys it reads, keys it writes), for the nodes that declare them
    io: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()
    state_keys: frozenset[str] = frozenset()  # the state schema's keys
    input_keys: frozenset[str] = frozenset()  # what a run's input may set

    def notes_of(self, node: str) -> tuple[str, ...]:
        return next((lines for name, lines in self.notes if name == node), ())


def shape_of(builder: StateGraph[Any, Any, Any, Any]) -> Shape:
    """Nodes in declaration order (START first, END last); edges sorted for stable text.
    Outcomes of one branch that lead to the same target share an edge: `pass | refuse`."""
    edges = [Edge(source, target, None) for source, target in builder.edges]
    for source, branches in builder.branches.items():
        for branch in branches.values():
            if branch.ends is None:
                raise ValueError(f"branch from {source!r} has no path map; declare one")
            by_target: dict[str, list[str]] = {}
            for outcome, target in branch.ends.items():
                by_target.setdefault(target, []).append(str(outcome))
            edges += [Edge(source, t, " | ".join(names)) for t, names in by_target.items()]
    order = {name: index for index, name in enumerate([START, *builder.nodes, END])}
    edges.sort(key=lambda e: (order[e.source], order[e.target], e.label or ""))
    notes = tuple(
        (name, tuple(spec.metadata[NOTES]))
        for name, spec in builder.nodes.items()
        if spec.metadata and spec.metadata.get(NOTES)
    )
    io = tuple(
        (name, tuple(spec.metadata[IO]["reads"]), tuple(spec.metadata[IO]["writes"]))
        for name, spec in builder.nodes.items()
        if spec.metadata and spec.metadata.get(IO)
    )
    return Shape(
        nodes=(START, *builder.nodes, END),
        edges=tuple(edges),
        notes=notes,
        io=io,
        state_keys=frozenset(getattr(builder.state_schema, "__annotations__", {})),
        input_keys=frozenset(getattr(builder.input_schema, "__annotations__", {})),
    )
